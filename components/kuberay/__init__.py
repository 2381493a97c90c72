"""Cloud-neutral KubeRay pieces: the operator's Helm release, the RayService (with its NetworkPolicies), its
checkpoint storage, its monitoring (kube-prometheus-stack, PodMonitors, alert rules, Ray's dashboards), the
rollout gate of its incremental upgrades (and Envoy Gateway for them, where asked), and KubeRayServe, which
composes them on any cluster (the `eks` and `kubernetes` platforms).

Placement (node selectors, tolerations) and load-balancer annotations come in as plain values from the
platform that uses them. Names load on first use (`rayserve_pulumi.lazy`): the platforms' descriptions
(`kuberay.spec`) import no Kubernetes SDK.
"""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {
    **dict.fromkeys(("RayMonitoring", "RayMonitoringArgs"), "rayserve_pulumi.kuberay.monitoring"),
    **dict.fromkeys(("KubeRayOperator", "KubeRayOperatorArgs", "operator_values"), "rayserve_pulumi.kuberay.operator"),
    **dict.fromkeys(("GPU_TOLERATION", "HEAD", "Placement", "RayService", "RayServiceArgs", "RayServiceResource",
                     "render_rayservice"), "rayserve_pulumi.kuberay.rayservice"),
    **dict.fromkeys(("CheckpointStorage", "CheckpointStorageArgs", "GcsStorageRef"), "rayserve_pulumi.kuberay.storage"),
    **dict.fromkeys(("EnvoyGateway", "EnvoyGatewayArgs"), "rayserve_pulumi.kuberay.gateway"),
    **dict.fromkeys(("RolloutGate", "RolloutGateArgs", "render_gate"), "rayserve_pulumi.kuberay.rollout_gate"),
    **dict.fromkeys(("KubeRayServe", "KubeRayServeArgs"), "rayserve_pulumi.kuberay.serving"),
})
