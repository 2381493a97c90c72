"""The `kubernetes` platform's settings (`rayserve:kubernetes`): how to reach the cluster, which StorageClasses
it offers, whether the KubeRay operator is installed by the stack, the Serve Service's annotations."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from rayserve_pulumi.config import kubernetes
from rayserve_pulumi.config.types import Dns1123Subdomain, IPv4Cidr, Strict

__all__ = ["KubernetesSettings"]


class KubernetesSettings(Strict):
    """An existing cluster. Nothing here is cloud specific: the Serve Service's load balancer comes from
    whatever the cluster runs, configured through `service_annotations`."""

    kubeconfig: Optional[str] = Field(None, min_length=1, description="path of the kubeconfig file (relative to the "
                                      "program's directory); unset: $KUBECONFIG or ~/.kube/config, as kubectl")
    context: Optional[str] = Field(None, min_length=1, description="the kubeconfig context; unset: its current one")
    storage_class: Optional[Dns1123Subdomain] = Field(
        None, description="ReadWriteOnce StorageClass of the GCS fault-tolerance Redis volume; unset: the cluster's "
        "default StorageClass")
    model_cache_storage_class: Optional[Dns1123Subdomain] = Field(
        None, description="ReadWriteMany StorageClass of the model cache (needed with "
        "ray_service.checkpoint.model_cache_gi)")
    install_operator: bool = Field(True, description="install the KubeRay operator (the pinned chart, "
                                   "rayserve:kuberay); false: one already runs in kuberay.namespace")
    api_server_cidrs: list[IPv4Cidr] = Field(
        default_factory=list, description="where the cluster's API server endpoints are (`kubectl get endpoints "
        "kubernetes`): egress from the Ray namespace is then contained to what Ray needs; empty: not restricted")
    service_annotations: dict[str, str] = Field(
        default_factory=dict, description="annotations of the Serve Service when ray_service.service_type is "
        "LoadBalancer (your cloud's or load balancer's own, e.g. an internal scheme)")

    @field_validator("service_annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            kubernetes.label_key(key)  # annotation keys follow the label keys' grammar
        return v
