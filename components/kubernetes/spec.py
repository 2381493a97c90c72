"""The `kubernetes` platform's description: an existing cluster, a prebuilt image, KubeRay's pods as nodes;
`rayserve render` shows its Kubernetes objects and `rayserve status` the kubectl commands. Nothing AWS."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from rayserve_pulumi.kuberay.spec import KubeRaySpec
from rayserve_pulumi.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesSpec", "SPEC"]


class KubernetesSpec(KubeRaySpec):
    name = "kubernetes"
    component = "rayserve_pulumi.kubernetes.platform:KubernetesPlatform"
    provider_component = "rayserve_pulumi.kubernetes.service:KubernetesService"
    sections = {**KubeRaySpec.sections, "kubernetes": (Optional[KubernetesSettings], Field(
        None, description="platform kubernetes: an existing cluster"))}
    required_sections = ("kubernetes",)

    def section_errors(self, cfg, supplied: frozenset = frozenset()) -> list[str]:
        errors = super().section_errors(cfg, supplied)
        rs = cfg.ray_service
        if not cfg.image.uri and "image" not in supplied:
            errors.append("platform kubernetes needs image.uri (a prebuilt image, pinned, in a registry the cluster "
                          "pulls from); image.build pushes to ECR, which is the eks and vm platforms'")
        if any(p.node_group for p in (rs.head, *rs.worker_groups)):
            errors.append("ray_service node_group names an EKS node group; the kubernetes platform places pods with "
                          "the cluster's own scheduling")
        if cfg.kubernetes is not None and rs.checkpoint.model_cache_gi and not cfg.kubernetes.model_cache_storage_class:
            errors.append("ray_service.checkpoint.model_cache_gi needs kubernetes.model_cache_storage_class (a "
                          "ReadWriteMany StorageClass of the cluster)")
        return errors

    def kubectl(self, cfg) -> tuple[str, str]:
        k = cfg.kubernetes
        flags = [f"--kubeconfig {k.kubeconfig}" if k.kubeconfig else "", f"--context {k.context}" if k.context else ""]
        return "with the stack's kubeconfig and context", " ".join(["kubectl", *filter(None, flags)])


SPEC = KubernetesSpec()
