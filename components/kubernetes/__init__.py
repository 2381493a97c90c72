"""The `kubernetes` platform: the stack's apps on a Kubernetes cluster that already exists (GKE, AKS,
on-premises, an EKS cluster another stack owns), reached by a kubeconfig. Names load on first use."""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {
    "KubernetesPlatform": "rayserve_pulumi.kubernetes.platform",
    "KubernetesPlatformArgs": "rayserve_pulumi.kubernetes.platform",
    "KubernetesSettings": "rayserve_pulumi.kubernetes.settings",
})
