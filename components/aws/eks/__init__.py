"""The `eks` platform: an EKS cluster (CPU/GPU node groups) running the KubeRay RayService."""
from rayserve_pulumi.aws.eks.cluster import EksCluster, EksClusterArgs
from rayserve_pulumi.aws.eks.platform import EksPlatform, EksPlatformArgs, placements

__all__ = ["EksCluster", "EksClusterArgs", "EksPlatform", "EksPlatformArgs", "placements"]
