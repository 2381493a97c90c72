"""Typed stack configuration: one pydantic model for everything a stack can set.

Stack files (`stacks/Pulumi.<stack>.yaml`) set structured keys in the `rayserve` namespace
(`rayserve:platform`, `rayserve:serve`, `rayserve:eks`, ...). What every platform shares is defined here
(the Serve apps, the image, metrics); each platform's own sections are defined in its folder
(`local/settings.py`, `kubernetes/settings.py`, `kuberay/settings.py`, `aws/eks/settings.py`,
`aws/vm/settings.py`) and composed into `StackConfig` here. Every field is described; unknown keys are
refused.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rayserve_pulumi.aws.eks.settings import EKS_VERSIONS, EksSettings, NodeGroup, check_node_groups
from rayserve_pulumi.aws.types import AcmCertificateArn, InstanceType, VpcCidr
from rayserve_pulumi.aws.vm.settings import LoadBalancerSettings, VmSettings
from rayserve_pulumi.config import kubernetes
from rayserve_pulumi.config.images import MUTABLE_TAGS, check_pinned
from rayserve_pulumi.config.types import AllowListCidr, Dns1123Label, IPv4Cidr, Quantity, Strict
from rayserve_pulumi.constants import (
    KUBE_PROMETHEUS_STACK_CHART, KUBE_PROMETHEUS_STACK_VERSION, PROMETHEUS_PORT, GRAFANA_PORT, RAY_CPU_IMAGE,
    RAY_GPU_IMAGE, DIRECT_INGRESS_DRAIN_ENV, SERVE_PROXY_ENV, SERVE_THROUGHPUT_ENV,
)
from rayserve_pulumi.kuberay.settings import (
    MAX_RAYSERVICE_NAME, CheckpointSettings, ExternalRedis, HeadSettings, KubeRaySettings, PodResources,
    RayServiceSettings, WorkerGroup,
)
from rayserve_pulumi.local.settings import LocalSettings
from rayserve_pulumi.registry import PLATFORMS  # names only: the descriptions load when asked
from rayserve_pulumi.rollout.gate import SERVE_LATENCY_BUCKETS_ENV
from rayserve_pulumi.rollout.settings import RolloutSettings

# The platforms' own settings live in their folders; they are named here too, as the sections of a stack.
__all__ = [
    "AcmCertificateArn", "AllowListCidr", "CheckpointSettings", "DeploymentOverride", "Dns1123Label", "EKS_VERSIONS",
    "EksSettings", "ExternalRedis", "HeadSettings", "IPv4Cidr", "ImageSettings", "InstanceType", "KubeRaySettings",
    "LoadBalancerSettings", "LocalSettings", "MAX_RAYSERVICE_NAME", "MetricsSettings",
    "NAMESPACE", "NodeGroup", "PodResources", "Quantity", "RayServiceSettings", "ServeSettings", "StackConfig",
    "Strict", "VmSettings", "VpcCidr", "WorkerGroup", "check_node_groups",
]

NAMESPACE = "rayserve"
ECR_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
OCI_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


class DeploymentOverride(Strict):
    """Per-deployment overrides of the bundled Serve config, checked again by ray.serve.schema once applied."""

    num_replicas: Optional[Union[Annotated[int, Field(ge=1)], Literal["auto"]]] = Field(
        None, description="fixed replica count (at least 1), or 'auto'")
    max_ongoing_requests: Optional[int] = Field(None, ge=1, description="requests one replica handles at once")
    user_config: Optional[dict[str, Any]] = Field(None, description="passed to the deployment's reconfigure(), in place")
    autoscaling_config: Optional[dict[str, Any]] = Field(None, description="Serve autoscaling (replaces num_replicas)")
    ray_actor_options: Optional[dict[str, Any]] = Field(None, description="num_cpus, num_gpus, memory, resources")
    health_check_period_s: Optional[float] = Field(None, gt=0, description="seconds between check_health calls")
    health_check_timeout_s: Optional[float] = Field(None, gt=0, description="seconds before a health check fails")


class ServeSettings(Strict):
    """Which Serve applications run, and what the stack changes in them."""

    app_dir: Optional[str] = Field(
        None, min_length=1, description="the folder of your apps' code (packages and modules), relative to the "
        "Pulumi program's directory: every import path must resolve inside it, Ray's workers import from it "
        "locally and the image carries it; default: the bundled apps")
    requirements: Optional[str] = Field(
        None, min_length=1, description="pip requirements file of the apps, relative to app_dir (default: "
        "app_dir's requirements.txt when present); installed into the image")
    import_timeout_s: float = Field(60, gt=0, le=600, description="how long validation may take to import the "
                                    "apps' code (in a child interpreter)")
    config_path: Optional[str] = Field(
        None, description="a Serve config file; default: app_dir's serve_config.yaml, or the bundled one "
                          "(rayserve_pulumi.serve_apps). A relative path is relative to the Pulumi program's directory")
    applications: Optional[list[str]] = Field(None, min_length=1,
                                              description="subset of the config's applications (default all; never empty)")
    overrides: dict[str, dict[str, DeploymentOverride]] = Field(
        default_factory=dict, description="application -> deployment -> fields to override")
    http_port: Optional[int] = Field(None, ge=1, le=65535, description="Serve's HTTP port (default: the config's)")
    proxy: Literal["default", "haproxy"] = Field("haproxy", description="Serve's ingress: haproxy (Ray's HAProxy "
                                                 "ingress, the faster) or default (Serve's Python proxy)")
    throughput_optimized: bool = Field(True, description="Serve's throughput-optimized settings (gRPC between "
                                       "deployments, direct ingress); user code keeps its own thread")

    @property
    def direct_ingress(self) -> bool:
        """Replicas bind ports of their own (constants.DIRECT_INGRESS_*): Ray turns direct ingress on under
        either setting."""
        return self.proxy == "haproxy" or self.throughput_optimized

    def runtime_env(self) -> dict[str, str]:
        """Environment of every Ray process that carries these choices (the one place they turn into env), and
        the latency buckets a rollout gate reads p99 from."""
        return {**SERVE_LATENCY_BUCKETS_ENV, **SERVE_PROXY_ENV[self.proxy],
                **(SERVE_THROUGHPUT_ENV if self.throughput_optimized else {}),
                **(DIRECT_INGRESS_DRAIN_ENV[self.proxy] if self.direct_ingress else {})}

    @field_validator("applications")
    @classmethod
    def _unique(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"application names must be unique: {v}")
        return v


class MetricsSettings(Strict):
    """Ray's and Serve's metrics in a real Prometheus, with Ray's Grafana dashboards and alert rules, on every
    platform: local (a Prometheus on local.host), eks (kube-prometheus-stack, PodMonitors, PrometheusRule,
    dashboards as ConfigMaps), vm (Prometheus and Grafana on the head, reachable through Session Manager)."""

    enabled: bool = Field(False, description="turn metrics on for this stack")
    scrape_interval_s: int = Field(15, ge=1, le=300, description="how often Prometheus scrapes every Ray node")
    prometheus_port: int = Field(PROMETHEUS_PORT, ge=1024, le=65535,
                                 description="local: Prometheus' port on local.host; vm: on the head's loopback")
    grafana_port: int = Field(GRAFANA_PORT, ge=1024, le=65535, description="vm: Grafana's port on the head's loopback")
    namespace: Dns1123Label = Field("monitoring", description="eks: the monitoring namespace")
    install_operator: bool = Field(True, description="eks: install kube-prometheus-stack; false uses a Prometheus "
                                   "Operator already in the cluster")
    chart_version: str = Field(KUBE_PROMETHEUS_STACK_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
                               description="eks: kube-prometheus-stack chart version (pinned, x.y.z)")
    release_label: str = Field(KUBE_PROMETHEUS_STACK_CHART, description="eks: the `release` label the operator's "
                               "Prometheus selects monitors and rules by")

    @field_validator("release_label")
    @classmethod
    def _label(cls, v: str) -> str:
        return kubernetes.label_value(v)

    @property
    def own_prometheus(self) -> bool:
        """On Kubernetes: whether the stack runs a Prometheus of its own (kube-prometheus-stack), which the
        rollout gate reads and Ray's dashboard is pointed at."""
        return self.enabled and self.install_operator

    @model_validator(mode="after")
    def _ports(self):
        if self.prometheus_port == self.grafana_port:
            raise ValueError(f"prometheus_port and grafana_port are both {self.prometheus_port}")
        return self


class ImageSettings(Strict):
    """Either a prebuilt, pinned image `uri`, or `build: true` (ECR repository + build of the bundled apps)."""

    uri: Optional[str] = Field(None, description="prebuilt image, pinned by version tag or digest")
    build: bool = Field(False, description="build the bundled apps into an image pushed to ECR")
    repository_name: str = Field("rayserve-apps", description="ECR repository name (build: true)")
    tag: str = Field("v1", description="version prefix of the immutable tag (a context hash is appended)")
    platform: Literal["linux/amd64", "linux/arm64"] = Field("linux/amd64", description="build platform")
    ray_base_image: str = Field(RAY_CPU_IMAGE, description="base image for CPU clusters")
    gpu_base_image: str = Field(RAY_GPU_IMAGE, description="base image for clusters with GPU workers")

    @field_validator("uri", "ray_base_image", "gpu_base_image")
    @classmethod
    def _pinned(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_pinned(v)

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if not OCI_TAG.match(v) or len(v) > 100:
            raise ValueError(f"tag {v!r}: letters, digits, '_', '.', '-', not starting with '.' or '-', at most 100 "
                             "characters (a context hash is appended)")
        if v in MUTABLE_TAGS:
            raise ValueError(f"tag {v!r} is mutable; use a version")
        return v

    @field_validator("repository_name")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not 2 <= len(v) <= 256 or not ECR_REPOSITORY.match(v):
            raise ValueError(f"repository_name {v!r}: 2-256 lower-case letters, digits and '.', '_', '-', '/' "
                             "between components (ECR's rules)")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if self.uri and self.build:
            raise ValueError("set either uri (prebuilt image) or build: true, not both")
        return self

    @property
    def provided(self) -> bool:
        return bool(self.uri or self.build)


class SharedSettings(Strict):
    """What every stack can set whatever its platform; StackConfig adds the platforms' own sections."""

    platform: Literal[tuple(PLATFORMS)] = Field("local", description="which registered platform deploys the stack")
    name: str = Field("rayserve", pattern=r"^[a-z][a-z0-9-]{0,23}$", description="prefix of every resource name")
    serve: ServeSettings = Field(ServeSettings(), description="Serve applications and overrides")
    image: ImageSettings = Field(ImageSettings(), description="the Serve image (eks, vm: uri or build; kubernetes: uri)")
    metrics: MetricsSettings = Field(MetricsSettings(), description="Prometheus, Ray's dashboards and alert rules")
    rollout: RolloutSettings = Field(RolloutSettings(), description="gated rollouts of a new version of the apps' "
                                     "code (local: stepped traffic, rolled back on errors or latency)")

    @model_validator(mode="after")
    def _platform_sections(self, info: ValidationInfo):
        from rayserve_pulumi.registry import platform

        # `supplied`: settings a component user passes as args instead (config.sources.parse_stack_config)
        errors = platform(self.platform).section_errors(self, frozenset((info.context or {}).get("supplied", ())))
        if errors:
            raise ValueError(errors[0])
        return self


def _stack_config() -> type:
    """SharedSettings plus every registered platform's own sections (`PlatformSpec.sections`): a platform's
    settings are declared in its folder, and a new platform's sections arrive with its registry line."""
    from pydantic import create_model

    from rayserve_pulumi.registry import sections

    return create_model("StackConfig", __base__=SharedSettings, __module__=__name__,
                        __doc__="Everything a stack can set, under the `rayserve:` config namespace.", **sections())


StackConfig = _stack_config()
