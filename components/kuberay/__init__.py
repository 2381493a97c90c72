"""Cloud-neutral KubeRay pieces: the operator's Helm release, the RayService (with its NetworkPolicies), its
checkpoint storage, and its monitoring (kube-prometheus-stack, PodMonitors, alert rules, Ray's dashboards).

Placement (node selectors, tolerations) and load-balancer annotations come in as plain values from
the platform that uses them (see rayserve_pulumi.aws.eks).
"""
from rayserve_pulumi.kuberay.monitoring import RayMonitoring, RayMonitoringArgs
from rayserve_pulumi.kuberay.operator import KubeRayOperator, KubeRayOperatorArgs, operator_values
from rayserve_pulumi.kuberay.rayservice import (
    GPU_TOLERATION, HEAD, Placement, RayService, RayServiceArgs, RayServiceResource, render_rayservice,
)
from rayserve_pulumi.kuberay.storage import CheckpointStorage, CheckpointStorageArgs, GcsStorageRef

__all__ = [
    "CheckpointStorage", "CheckpointStorageArgs", "GPU_TOLERATION", "GcsStorageRef", "HEAD", "KubeRayOperator",
    "KubeRayOperatorArgs", "Placement", "RayMonitoring", "RayMonitoringArgs", "RayService", "RayServiceArgs",
    "RayServiceResource", "operator_values", "render_rayservice",
]
