"""The `vm` platform: a Ray cluster on EC2 (head + auto-scaled workers) running the Serve image."""
from rayserve_pulumi.aws.vm.cluster import RayVmCluster, RayVmClusterArgs
from rayserve_pulumi.aws.vm.platform import VmPlatform, VmPlatformArgs

__all__ = ["RayVmCluster", "RayVmClusterArgs", "VmPlatform", "VmPlatformArgs"]
