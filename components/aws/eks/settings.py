"""The `eks` platform's settings (`rayserve:eks`): the cluster, its VPC, its managed node groups and
Karpenter's node pools; and where the Ray pods of `rayserve:ray_service` may be placed on them."""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.config import kubernetes
from rayserve_pulumi.config.instances import instance_type
from rayserve_pulumi.aws.types import AcmCertificateArn, InstanceType, VpcCidr
from rayserve_pulumi.config.types import AllowListCidr, Dns1123Label, Strict
from rayserve_pulumi.constants import KARPENTER_AMI_ALIAS, KARPENTER_K8S_VERSIONS, KARPENTER_VERSION
from rayserve_pulumi.kuberay.settings import RayServiceSettings

__all__ = ["EKS_VERSIONS", "Nodes", "NodeGroup", "NodePool", "KarpenterSettings", "EksSettings", "check_node_groups"]

EKS_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34")


class Nodes(Strict):
    """What a managed node group and a Karpenter node pool share: the nodes a Ray pod can be placed on."""

    name: Dns1123Label = Field(description="group name; Ray pods select it through the rayserve.io/node-group label")
    instance_types: list[InstanceType] = Field(min_length=1, description="EC2 instance types")
    disk_size_gb: int = Field(100, ge=20, description="root volume size")
    gpu: bool = Field(False, description="NVIDIA AMI and a nvidia.com/gpu NoSchedule taint")
    labels: dict[str, str] = Field(default_factory=dict, description="extra node labels")

    @field_validator("instance_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"instance types repeat: {v}")
        gpus = {instance_type(n).gpus > 0 for n in v}
        if len(gpus) > 1:
            raise ValueError(f"instance types {v} mix GPU and CPU-only types; one group is one kind")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            kubernetes.label_key(key)
            kubernetes.label_value(value)
        return v

    @model_validator(mode="after")
    def _gpu(self):
        has_gpus = any(instance_type(n).gpus for n in self.instance_types)
        if self.gpu != has_gpus:
            raise ValueError(f"node group {self.name}: gpu is {self.gpu} but instance types {self.instance_types} "
                             f"{'have' if has_gpus else 'have no'} GPUs")
        return self

    def pod_room(self) -> tuple[int, int, int]:
        """(millicpu, MiB, GPUs) a pod placed here can surely be given: a managed group may put it on any of
        its instance types, so the least allocatable of them."""
        types = [instance_type(n) for n in self.instance_types]
        return (min(t.allocatable_millicpu for t in types), min(t.allocatable_memory_mib for t in types),
                min(t.gpus for t in types))


class NodeGroup(Nodes):
    """An EKS managed node group: a fixed range of nodes (the system group that runs the operators)."""

    min_size: int = Field(1, ge=0, description="fewest nodes")
    desired_size: int = Field(1, ge=0, description="nodes at creation")
    max_size: int = Field(3, ge=1, description="most nodes")

    @model_validator(mode="after")
    def _sizes(self):
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"node group {self.name}: need min_size <= desired_size <= max_size")
        return self


_DURATION = re.compile(r"^([0-9]+(s|m|h))+$")


class NodePoolLimits(Strict):
    """The most a node pool may hold in all (Karpenter's `spec.limits`): it launches no node past them."""

    cpu: int = Field(ge=1, description="vCPUs across the pool's nodes")
    memory_gib: int = Field(ge=1, description="GiB of memory across the pool's nodes")
    gpus: int = Field(0, ge=0, description="nvidia.com/gpu across the pool's nodes (GPU pools)")


class NodePool(Nodes):
    """A Karpenter NodePool: nodes launched when Ray's autoscaler adds pods nothing can hold, and removed
    (consolidated) when empty or underused; the Ray head is never disrupted (do-not-disrupt and a PDB)."""

    limits: NodePoolLimits = Field(description="the pool's ceiling (cpu, memory_gib, gpus)")
    capacity_types: list[Literal["on-demand", "spot"]] = Field(
        ["on-demand"], min_length=1, description="EC2 purchase options Karpenter may launch")
    consolidate_after: str = Field("5m", description="how long a node stays empty or underused before Karpenter "
                                   "removes it (Go duration: 30s, 5m, 1h30m)")
    expire_after: str = Field("720h", description="a node's most lifetime before it is replaced (Go duration)")

    @field_validator("consolidate_after", "expire_after")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not _DURATION.match(v):
            raise ValueError(f"{v!r} is not a duration like 30s, 5m or 1h30m")
        return v

    @model_validator(mode="after")
    def _limits(self):
        if self.gpu and self.limits.gpus < 1:
            raise ValueError(f"node pool {self.name}: a GPU pool needs limits.gpus >= 1")
        if not self.gpu and self.limits.gpus:
            raise ValueError(f"node pool {self.name}: limits.gpus is for GPU pools; this pool's types have no GPU")
        fits = [n for n in self.instance_types if self.holds(instance_type(n))]
        if not fits:
            t = min((instance_type(n) for n in self.instance_types), key=lambda t: (t.vcpu, t.memory_mib))
            raise ValueError(f"node pool {self.name}: limits (cpu {self.limits.cpu}, memory_gib "
                             f"{self.limits.memory_gib}, gpus {self.limits.gpus}) are below one {t.name} node "
                             f"({t.vcpu} vCPU, {t.memory_mib / 1024:g} GiB, {t.gpus} GPUs): Karpenter could launch none")
        return self

    def pod_room(self) -> tuple[int, int, int]:
        """Karpenter launches a type that fits the pod, among those its limits hold: the most of them."""
        types = [t for t in map(instance_type, self.instance_types) if self.holds(t)]
        return (max(t.allocatable_millicpu for t in types), max(t.allocatable_memory_mib for t in types),
                max(t.gpus for t in types))

    def holds(self, t) -> bool:
        """Karpenter counts a node's whole capacity against the limits: can one such node launch?"""
        return t.vcpu <= self.limits.cpu and t.memory_mib <= self.limits.memory_gib * 1024 and t.gpus <= self.limits.gpus


class KarpenterSettings(Strict):
    """Karpenter (pinned chart, IRSA, an interruption queue) and its node pools."""

    chart_version: Literal[KARPENTER_VERSION] = Field(KARPENTER_VERSION, description="Karpenter's Helm chart (and "
                                                      "CRD chart) version: the one this package is tested with")
    ami_alias: str = Field(KARPENTER_AMI_ALIAS, description="the EKS-optimized AL2023 release nodes boot "
                           "(al2023@vYYYYMMDD: pinned, so a new AMI is a reviewed change)")
    node_pools: list[NodePool] = Field(min_length=1, description="the pools Karpenter launches nodes into")

    @field_validator("ami_alias")
    @classmethod
    def _alias(cls, v: str) -> str:
        if not re.fullmatch(r"al2023@v[0-9]{8}", v):
            raise ValueError(f"{v!r} is not a pinned AL2023 alias like {KARPENTER_AMI_ALIAS} (latest is refused: "
                             "nodes would change AMI unreviewed)")
        return v


class EksSettings(Strict):
    """The EKS cluster and its VPC."""

    kubernetes_version: Literal[EKS_VERSIONS] = Field("1.33", description="EKS Kubernetes version")
    vpc_cidr: VpcCidr = Field("10.0.0.0/16", description="VPC IPv4 CIDR")
    availability_zones: int = Field(2, ge=2, le=3, description="AZs (a public and a private subnet each)")
    nat_gateways: Literal["Single", "OnePerAz"] = Field("Single", description="NAT gateway strategy")
    api_public_cidrs: list[AllowListCidr] = Field(
        default_factory=list, description="who may reach the Kubernetes API from outside the VPC (the deployer's "
        "ranges); empty: the API endpoint is private, and `pulumi up` must run from inside the VPC")
    node_groups: list[NodeGroup] = Field(min_length=1, description="managed node groups (at least one CPU group)")
    karpenter: Optional[KarpenterSettings] = Field(None, description="Karpenter and its node pools: nodes that "
                                                   "scale with Ray's pods; unset, only the managed groups")
    storage_class: Dns1123Label = Field("gp3-encrypted", description="name of the default encrypted gp3 StorageClass")

    serve_tls_certificate_arn: Optional[AcmCertificateArn] = Field(
        None, description="an ACM certificate: the Serve Service's NLB terminates TLS on 443 (needs "
        "ray_service.service_type LoadBalancer)")

    @model_validator(mode="after")
    def _groups(self):
        names = [g.name for g in self.placements()]
        if len(set(names)) != len(names):
            raise ValueError(f"node group and node pool names must be unique: {names}")
        if not any(not g.gpu for g in self.node_groups):
            raise ValueError("at least one CPU node group is required (KubeRay operator, Karpenter, Ray head)")
        if self.karpenter and self.kubernetes_version not in KARPENTER_K8S_VERSIONS:
            raise ValueError(f"karpenter: Karpenter {KARPENTER_VERSION} and its AMI support Kubernetes "
                             f"{', '.join(KARPENTER_K8S_VERSIONS)}, not {self.kubernetes_version}")
        return self

    def placements(self) -> list[Nodes]:
        """Where a Ray pod may be placed: the managed node groups, then Karpenter's node pools."""
        return [*self.node_groups, *(self.karpenter.node_pools if self.karpenter else ())]

    def group(self, name: Optional[str]) -> Optional[Nodes]:
        return next((g for g in self.placements() if g.name == name), None)

    def gpu_nodes(self) -> bool:
        return any(g.gpu for g in self.placements())

    def is_gpu_group(self, name: Optional[str]) -> bool:
        group = self.group(name)
        return bool(group and group.gpu)


def check_node_groups(rs: RayServiceSettings, eks: Optional[EksSettings]) -> None:
    """Ray pods must name existing node groups, and GPU requests must land on a GPU node group."""
    for where, spec in [("head", rs.head), *((f"worker_groups.{g.name}", g) for g in rs.worker_groups)]:
        if spec.node_group and (eks is None or eks.group(spec.node_group) is None):
            raise ValueError(f"ray_service.{where}.node_group {spec.node_group!r} is not an eks node group or "
                             "node pool")
        if spec.gpu and not (eks and eks.is_gpu_group(spec.node_group)):
            raise ValueError(f"ray_service.{where} requests {spec.gpu} GPU(s) but node_group "
                             f"{spec.node_group!r} is not a GPU node group")
