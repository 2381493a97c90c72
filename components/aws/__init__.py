"""AWS pieces: IAM helpers, the ECR Serve image, and the `eks` and `vm` platforms (subfolders). Names load
on first use (`rayserve_pulumi.lazy`): a platform's description imports no AWS SDK."""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {"ServeImage": "rayserve_pulumi.aws.image",
                                          "ServeImageArgs": "rayserve_pulumi.aws.image"})
