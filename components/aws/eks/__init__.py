"""The `eks` platform: an EKS cluster (CPU/GPU node groups) running the KubeRay RayService. Names load on
first use (`rayserve_pulumi.lazy`)."""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {
    "EksCluster": "rayserve_pulumi.aws.eks.cluster", "EksClusterArgs": "rayserve_pulumi.aws.eks.cluster",
    "EksPlatform": "rayserve_pulumi.aws.eks.platform", "EksPlatformArgs": "rayserve_pulumi.aws.eks.platform",
    "placements": "rayserve_pulumi.aws.eks.platform",
})
