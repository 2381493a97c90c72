"""The `vm` platform: a Ray cluster on EC2 (head + auto-scaled workers) running the Serve image. Names load
on first use (`rayserve_pulumi.lazy`)."""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {
    "RayVmCluster": "rayserve_pulumi.aws.vm.cluster", "RayVmClusterArgs": "rayserve_pulumi.aws.vm.cluster",
    "VmPlatform": "rayserve_pulumi.aws.vm.platform", "VmPlatformArgs": "rayserve_pulumi.aws.vm.platform",
})
