"""AWS pieces: IAM helpers, the ECR Serve image, and the `eks` and `vm` platforms (subfolders)."""
from rayserve_pulumi.aws.image import ServeImage, ServeImageArgs

__all__ = ["ServeImage", "ServeImageArgs"]
