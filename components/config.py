"""Typed stack configuration: one pydantic model for everything a stack can set.

Stack files (`stacks/Pulumi.<stack>.yaml`) set structured keys in the `rayserve` namespace
(`rayserve:platform`, `rayserve:serve`, `rayserve:eks`, ...). `load_stack_config` reads them all,
rejects unknown keys and validates the whole tree before the program declares any resource.
"""
from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.errors import ConfigError, format_pydantic_errors
from components.images import MUTABLE_TAGS, image_is_pinned

NAMESPACE = "rayserve"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# KubeRay derives Service and pod names from the RayService name; it must stay <= 47 characters.
MAX_RAYSERVICE_NAME = 47


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentOverride(Strict):
    """Per-deployment overrides, checked again by ray.serve.schema once applied."""

    num_replicas: Optional[Union[int, Literal["auto"]]] = None
    max_ongoing_requests: Optional[int] = None
    user_config: Optional[dict[str, Any]] = None
    autoscaling_config: Optional[dict[str, Any]] = None
    ray_actor_options: Optional[dict[str, Any]] = None
    health_check_period_s: Optional[float] = None
    health_check_timeout_s: Optional[float] = None


class ServeSettings(Strict):
    config_path: str = "serve_apps/serve_config.yaml"
    applications: Optional[list[str]] = Field(default=None, description="subset of apps to deploy (default all)")
    overrides: dict[str, dict[str, DeploymentOverride]] = Field(default_factory=dict)
    http_port: Optional[int] = Field(default=None, ge=1, le=65535)
    proxy: Literal["default", "haproxy"] = Field(default="default", description="haproxy: experimental, faster ingress")


class LocalSettings(Strict):
    host: str = "127.0.0.1"
    gcs_port: int = Field(default=6379, ge=1, le=65535)
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    num_cpus: int = Field(default=4, gt=0)
    deploy_timeout_s: float = Field(default=300, gt=0)
    auth_mode: Literal["token", "disabled"] = "token"


def _check_pinned(uri: str) -> str:
    if not image_is_pinned(uri):
        raise ValueError(f"image {uri!r} has no tag or a mutable one; pin a version tag or digest")
    return uri


class ImageSettings(Strict):
    """Either a prebuilt, pinned image `uri`, or `build: true` (ECR repo + build of serve_apps/)."""

    uri: Optional[str] = None
    build: bool = False
    repository_name: str = "rayserve-apps"
    tag: str = "v1"
    platform: str = "linux/amd64"
    ray_base_image: str = "rayproject/ray:2.60.0-py311-cpu"
    gpu_base_image: str = "rayproject/ray:2.60.0-py311-gpu"

    @field_validator("uri", "ray_base_image", "gpu_base_image")
    @classmethod
    def _pinned(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_pinned(v)

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if v in MUTABLE_TAGS:
            raise ValueError(f"tag {v!r} is mutable; use a version")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if self.uri and self.build:
            raise ValueError("set either uri (prebuilt image) or build: true, not both")
        return self

    @property
    def provided(self) -> bool:
        return bool(self.uri or self.build)


class NodeGroup(Strict):
    name: str
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(default=1, ge=0)
    desired_size: int = Field(default=1, ge=0)
    max_size: int = Field(default=3, ge=1)
    disk_size_gb: int = Field(default=100, ge=20)
    gpu: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sizes(self):
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"node group {self.name}: need min_size <= desired_size <= max_size")
        return self


class EksSettings(Strict):
    kubernetes_version: str = "1.33"
    vpc_cidr: str = "10.0.0.0/16"
    availability_zones: int = Field(default=2, ge=2, le=3)
    nat_gateways: Literal["Single", "OnePerAz"] = "Single"
    endpoint_public_access: bool = True
    node_groups: list[NodeGroup] = Field(min_length=1)
    storage_class: str = "gp3-encrypted"

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


class KubeRaySettings(Strict):
    chart_version: str = "1.7.0"
    namespace: str = "kuberay-system"
    repository: str = "https://ray-project.github.io/kuberay-helm/"


class PodResources(Strict):
    cpu: str = "1"
    memory: str = "4Gi"
    gpu: int = Field(default=0, ge=0)


class HeadSettings(PodResources):
    num_cpus: Optional[float] = Field(default=None, ge=0, description="Ray logical CPUs; 0 keeps work off the head")
    node_group: Optional[str] = None


class WorkerGroup(PodResources):
    name: str
    replicas: int = Field(default=1, ge=0)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=3, ge=0)
    node_group: Optional[str] = None

    @model_validator(mode="after")
    def _replicas(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"worker group {self.name}: min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(f"worker group {self.name}: replicas must lie within [min_replicas, max_replicas]")
        return self


class CheckpointSettings(Strict):
    gcs_fault_tolerance: bool = True
    redis_storage_gi: int = Field(default=8, ge=1)
    model_cache_gi: Optional[int] = Field(default=None, ge=1)


class RayServiceSettings(Strict):
    name: str = "rayserve"
    namespace: str = "ray"
    ray_version: str = "2.60.0"
    head: HeadSettings = HeadSettings()
    worker_groups: list[WorkerGroup] = Field(default_factory=lambda: [WorkerGroup(name="cpu")])
    enable_autoscaling: bool = True
    upgrade_strategy: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = "NewCluster"
    auth_mode: Literal["token", "disabled"] = "token"
    service_type: Literal["LoadBalancer", "ClusterIP"] = "ClusterIP"
    checkpoint: CheckpointSettings = CheckpointSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > MAX_RAYSERVICE_NAME:
            raise ValueError(f"name {v!r} is {len(v)} characters; KubeRay allows at most {MAX_RAYSERVICE_NAME}")
        if not DNS_1035.match(v):
            raise ValueError(f"name {v!r} must be a DNS-1035 label (lower case, digits, '-')")
        return v

    @model_validator(mode="after")
    def _groups(self):
        names = [g.name for g in self.worker_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"worker group names must be unique: {names}")
        return self


class VmSettings(Strict):
    vpc_cidr: str = "10.20.0.0/16"
    head_instance_type: str = "m6i.xlarge"
    worker_instance_type: str = "m6i.xlarge"
    worker_min: int = Field(default=1, ge=0)
    worker_desired: int = Field(default=1, ge=0)
    worker_max: int = Field(default=3, ge=0)
    ami_id: Optional[str] = None
    allowed_cidrs: list[str] = Field(min_length=1)
    root_volume_gb: int = Field(default=100, ge=30)
    checkpoint_volume_gb: int = Field(default=50, ge=1)
    s3_bucket_arn: Optional[str] = None
    config_poll_seconds: int = Field(default=30, ge=5)
    ssm_session_access: bool = Field(default=True, description="AmazonSSMManagedInstanceCore, for port-forwarding")

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            ipaddress.ip_network(cidr)  # raises ValueError naming the bad value
        return v

    @model_validator(mode="after")
    def _sizes(self):
        if not self.worker_min <= self.worker_desired <= self.worker_max:
            raise ValueError("need worker_min <= worker_desired <= worker_max")
        return self


class StackConfig(Strict):
    """Everything a stack can set, under the `rayserve:` config namespace."""

    platform: Literal["local", "vm", "eks"] = "local"
    name: str = Field(default="rayserve", pattern=r"^[a-z][a-z0-9-]{0,23}$")
    serve: ServeSettings = ServeSettings()
    local: LocalSettings = LocalSettings()
    image: ImageSettings = ImageSettings()
    eks: Optional[EksSettings] = None
    kuberay: KubeRaySettings = KubeRaySettings()
    ray_service: RayServiceSettings = RayServiceSettings()
    vm: Optional[VmSettings] = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _platform_sections(self):
        if self.platform == "eks":
            if self.eks is None:
                raise ValueError("platform eks needs an `eks` section")
            check_node_groups(self.ray_service, self.eks)
        if self.platform == "vm" and self.vm is None:
            raise ValueError("platform vm needs a `vm` section")
        if self.platform in ("eks", "vm") and not self.image.provided:
            raise ValueError(f"platform {self.platform} needs image.uri (prebuilt, pinned) or image.build: true")
        return self



def check_node_groups(rs: RayServiceSettings, eks: Optional[EksSettings]) -> None:
    """Ray pods must name existing node groups, and GPU requests must land on a GPU node group."""
    for where, spec in [("head", rs.head), *((f"worker_groups.{g.name}", g) for g in rs.worker_groups)]:
        if spec.node_group and (eks is None or eks.group(spec.node_group) is None):
            raise ValueError(f"ray_service.{where}.node_group {spec.node_group!r} is not an eks node group")
        if spec.gpu and not (eks and eks.is_gpu_group(spec.node_group)):
            raise ValueError(f"ray_service.{where} requests {spec.gpu} GPU(s) but node_group "
                             f"{spec.node_group!r} is not a GPU node group")


def _raw_namespace_values(namespace: str) -> dict[str, Any]:
    """All `namespace:*` config values of the running stack, JSON objects decoded."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values: dict[str, Any] = {}
    for full_key, raw in merged.items():
        ns, _, key = full_key.partition(":")
        if ns != namespace or not key:
            continue
        try:
            values[key] = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            values[key] = raw
    return values


def read_stack_file(path) -> dict[str, Any]:
    """The `rayserve:` values of a stack file (e.g. stacks/Pulumi.local.yaml), namespace stripped."""
    raw = yaml.safe_load(Path(path).read_text()).get("config") or {}
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}


def parse_stack_config(values: dict[str, Any]) -> StackConfig:
    """Validate raw config values; raise ConfigError naming each bad `rayserve:` key."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("invalid stack config:\n" + format_pydantic_errors(f"{NAMESPACE}:", exc)) from None


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read and validate the current stack's `rayserve:` config."""
    return parse_stack_config(_raw_namespace_values(namespace))
