"""Pod Security Admission for the namespaces the package creates: `restricted` enforced where every pod is
ours or a chart that complies (Ray, Redis, the KubeRay operator); a namespace holding a chart that needs more
(kube-prometheus-stack's node exporter mounts the host) enforces what it needs and still warns and audits
at `restricted`."""
from __future__ import annotations

__all__ = ["POD_SECURITY_VERSION", "pod_security_labels"]

POD_SECURITY_VERSION = "latest"


def pod_security_labels(enforce: str, warn: str = "restricted") -> dict[str, str]:
    """The `pod-security.kubernetes.io/*` labels of a namespace."""
    labels = {}
    for mode, level in (("enforce", enforce), ("warn", warn), ("audit", warn)):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    return labels
