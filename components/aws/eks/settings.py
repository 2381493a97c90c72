"""The `eks` platform's settings (`rayserve:eks`): the cluster, its VPC and its node groups; and where the Ray
pods of `rayserve:ray_service` may be placed on them."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.config import kubernetes
from rayserve_pulumi.config.instances import instance_type
from rayserve_pulumi.aws.types import AcmCertificateArn, InstanceType, VpcCidr
from rayserve_pulumi.config.types import AllowListCidr, Dns1123Label, Strict
from rayserve_pulumi.kuberay.settings import RayServiceSettings

__all__ = ["EKS_VERSIONS", "NodeGroup", "EksSettings", "check_node_groups"]

EKS_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34")


class NodeGroup(Strict):
    """An EKS managed node group."""

    name: Dns1123Label = Field(description="group name; Ray pods select it through the rayserve.io/node-group label")
    instance_types: list[InstanceType] = Field(min_length=1, description="EC2 instance types")
    min_size: int = Field(1, ge=0, description="fewest nodes")
    desired_size: int = Field(1, ge=0, description="nodes at creation")
    max_size: int = Field(3, ge=1, description="most nodes")
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
    def _sizes(self):
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"node group {self.name}: need min_size <= desired_size <= max_size")
        has_gpus = any(instance_type(n).gpus for n in self.instance_types)
        if self.gpu != has_gpus:
            raise ValueError(f"node group {self.name}: gpu is {self.gpu} but instance types {self.instance_types} "
                             f"{'have' if has_gpus else 'have no'} GPUs")
        return self

    def smallest(self):
        """What every node of this group can give one pod: the least allocatable of its instance types."""
        types = [instance_type(n) for n in self.instance_types]
        return (min(t.allocatable_millicpu for t in types), min(t.allocatable_memory_mib for t in types),
                min(t.gpus for t in types))


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
    storage_class: Dns1123Label = Field("gp3-encrypted", description="name of the default encrypted gp3 StorageClass")

    serve_tls_certificate_arn: Optional[AcmCertificateArn] = Field(
        None, description="an ACM certificate: the Serve Service's NLB terminates TLS on 443 (needs "
        "ray_service.service_type LoadBalancer)")

    @model_validator(mode="after")
    def _groups(self):
        names = [g.name for g in self.node_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"node group names must be unique: {names}")
        if not any(not g.gpu for g in self.node_groups):
            raise ValueError("at least one CPU node group is required (KubeRay operator, Ray head)")
        return self

    def group(self, name: Optional[str]) -> Optional[NodeGroup]:
        return next((g for g in self.node_groups if g.name == name), None)

    def is_gpu_group(self, name: Optional[str]) -> bool:
        group = self.group(name)
        return bool(group and group.gpu)


def check_node_groups(rs: RayServiceSettings, eks: Optional[EksSettings]) -> None:
    """Ray pods must name existing node groups, and GPU requests must land on a GPU node group."""
    for where, spec in [("head", rs.head), *((f"worker_groups.{g.name}", g) for g in rs.worker_groups)]:
        if spec.node_group and (eks is None or eks.group(spec.node_group) is None):
            raise ValueError(f"ray_service.{where}.node_group {spec.node_group!r} is not an eks node group")
        if spec.gpu and not (eks and eks.is_gpu_group(spec.node_group)):
            raise ValueError(f"ray_service.{where} requests {spec.gpu} GPU(s) but node_group "
                             f"{spec.node_group!r} is not a GPU node group")
