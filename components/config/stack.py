"""Typed stack configuration: one pydantic model for everything a stack can set.

Stack files (`stacks/Pulumi.<stack>.yaml`) set structured keys in the `rayserve` namespace
(`rayserve:platform`, `rayserve:serve`, `rayserve:eks`, ...). Every field is described here, so this
module is the reference for what a stack may say; unknown keys are refused.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from rayserve_pulumi.config import aws, kubernetes
from rayserve_pulumi.config.images import MUTABLE_TAGS, check_pinned
from rayserve_pulumi.config.instances import instance_type
from rayserve_pulumi.config.types import Dns1123Label, Quantity, Strict
from rayserve_pulumi.kubernetes.settings import KubernetesSettings
from rayserve_pulumi.constants import (
    DASHBOARD_PORT, FALLBACK_PROXY_GRPC_PORT, FALLBACK_PROXY_PORT, GCS_PORT, GRAFANA_PORT, HAPROXY_METRICS_PORT,
    HAPROXY_STATS_PORT, KUBE_PROMETHEUS_STACK_CHART,
    KUBE_PROMETHEUS_STACK_VERSION, KUBERAY_CHART_REPOSITORY, KUBERAY_CHART_VERSION, PROMETHEUS_PORT, RAY_CPU_IMAGE,
    RAY_GPU_IMAGE, RAY_VERSION, SERVE_PROXY_ENV, SERVE_THROUGHPUT_ENV,
)
from rayserve_pulumi.registry import PLATFORMS  # names only: the descriptions load when asked

NAMESPACE = "rayserve"
# KubeRay derives Service and pod names from the RayService name; it must stay <= 47 characters.
MAX_RAYSERVICE_NAME = 47
ECR_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
OCI_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
EKS_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34")


def _known_instance_type(name: str) -> str:
    instance_type(name)
    return name


# Strings that follow the rules of the system that receives them (checked where they enter; the Kubernetes
# ones, and the Strict base, in config.types).
IPv4Cidr = Annotated[str, AfterValidator(aws.ipv4_cidr)]
VpcCidr = Annotated[str, AfterValidator(aws.vpc_cidr)]
AllowListCidr = Annotated[str, AfterValidator(aws.allow_list_cidr)]  # a source range, never 0.0.0.0/0
AcmCertificateArn = Annotated[str, AfterValidator(aws.acm_certificate_arn)]
InstanceType = Annotated[str, AfterValidator(_known_instance_type)]


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
        """Environment of every Ray process that carries these choices (the one place they turn into env)."""
        return {**SERVE_PROXY_ENV[self.proxy], **(SERVE_THROUGHPUT_ENV if self.throughput_optimized else {})}

    @field_validator("applications")
    @classmethod
    def _unique(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"application names must be unique: {v}")
        return v


class LocalSettings(Strict):
    """The `local` platform: a Ray head on this machine."""

    host: str = Field("127.0.0.1", description="IP address the dashboard, Serve's proxy and the Ray node listen on; "
                      "a non-loopback address needs auth_mode token")
    gcs_port: int = Field(GCS_PORT, ge=1, le=65535, description="Ray GCS port")
    dashboard_port: int = Field(DASHBOARD_PORT, ge=1, le=65535, description="dashboard and Serve REST API port")
    haproxy_stats_port: int = Field(HAPROXY_STATS_PORT, ge=1024, le=65535, description="HAProxy ingress' stats page "
                                    "(Ray binds it on every interface); two local stacks need different ports")
    haproxy_metrics_port: int = Field(HAPROXY_METRICS_PORT, ge=1024, le=65535, description="HAProxy ingress' "
                                      "Prometheus exporter (every interface, like the stats page)")
    fallback_proxy_port: int = Field(FALLBACK_PROXY_PORT, ge=1024, le=65535, description="HTTP port of Serve's "
                                     "fallback proxy, HAProxy's backup server; two local stacks need different ports "
                                     "(with one port, one stack's HAProxy could fall back to the other's apps)")
    fallback_proxy_grpc_port: int = Field(FALLBACK_PROXY_GRPC_PORT, ge=1024, le=65535, description="its gRPC port "
                                          "(bound only when the Serve config turns gRPC on)")
    ray_client_port: Optional[int] = Field(None, ge=1024, le=65535, description="the Ray Client server's port "
                                           "(ray://); unset: no Ray Client server (nothing of the stack uses it)")
    haproxy_threads: int = Field(1, ge=1, le=64, description="threads of Ray's HAProxy ingress (Ray's default 4): on one "
                                 "machine its cores serve the Python replicas better (README Performance)")
    num_cpus: int = Field(4, gt=0, le=1024, description="logical CPUs Ray may schedule; also how many Ray "
                          "workers may start at once")
    num_gpus: int = Field(0, ge=0, le=64, description="GPUs Ray may schedule (0: Serve may not ask for any)")
    deploy_timeout_s: float = Field(300, gt=0, description="how long `up` waits for every app to be RUNNING")
    auth_mode: Literal["token", "disabled"] = Field("token", description="Ray token authentication")
    models_dir: str = Field(".models", min_length=1, description="folder of model directories the text app may load "
                            "by name (relative to the program's directory; set-up generates tiny-t5 there)")

    # the ports this machine's Ray head always listens on by the stack's choice (ray_client_port: when set)
    PORT_KEYS: ClassVar[tuple[str, ...]] = ("gcs_port", "dashboard_port", "haproxy_stats_port", "haproxy_metrics_port",
                                            "fallback_proxy_port", "fallback_proxy_grpc_port")

    def listening_ports(self) -> dict[str, int]:
        """Every port the head listens on by the stack's choice, by key."""
        keys = self.PORT_KEYS + (("ray_client_port",) if self.ray_client_port is not None else ())
        return {key: getattr(self, key) for key in keys}

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address (e.g. 127.0.0.1)") from None
        return v

    @model_validator(mode="after")
    def _ports(self):
        if not ipaddress.ip_address(self.host).is_loopback and self.auth_mode != "token":
            raise ValueError(f"host {self.host} is reachable from other machines: auth_mode must be token (an "
                             "unauthenticated dashboard there runs anyone's code through the Jobs API)")
        ports: dict[int, str] = {}
        for key, port in self.listening_ports().items():
            if port in ports:
                raise ValueError(f"{ports[port]} and {key} are both {port}; give each its own port")
            ports[port] = key
        return self


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

    @model_validator(mode="after")
    def _ports(self):
        if self.prometheus_port == self.grafana_port:
            raise ValueError(f"prometheus_port and grafana_port are both {self.prometheus_port}")
        return self


class LoadBalancerSettings(Strict):
    """The Serve endpoint's load balancer (EKS: the Serve Service's NLB; VM: the NLB in front of the nodes):
    internal unless a stack asks for internet-facing, which then admits only `allowed_cidrs`."""

    load_balancer_scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="reachable inside the VPC, or from allowed_cidrs on the internet")
    allowed_cidrs: list[AllowListCidr] = Field(default_factory=list, description="internet-facing only: the source "
                                               "ranges the load balancer admits; required")
    tls_certificate_arn: Optional[AcmCertificateArn] = Field(
        None, description="an ACM certificate: the load balancer terminates TLS on port 443")

    def allow_list_errors(self) -> Optional[str]:
        if self.load_balancer_scheme == "internet-facing" and not self.allowed_cidrs:
            return ("load_balancer_scheme internet-facing needs allowed_cidrs (the source ranges it admits); "
                    "an open endpoint is never the default")
        if self.allowed_cidrs and self.load_balancer_scheme != "internet-facing":
            return "allowed_cidrs applies to an internet-facing load balancer; set load_balancer_scheme"
        return None


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
    """The KubeRay operator's Helm release."""

    chart_version: str = Field(KUBERAY_CHART_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
                               description="kuberay-operator chart version (pinned, x.y.z)")
    namespace: Dns1123Label = Field("kuberay-system", description="operator namespace")
    repository: str = Field(KUBERAY_CHART_REPOSITORY, pattern=r"^(https|oci)://[^\s]+$", description="Helm repository")


class PodResources(Strict):
    cpu: Quantity = Field("1", description="container CPU request and limit (Kubernetes quantity)")
    memory: Quantity = Field("4Gi", description="container memory request and limit (Kubernetes quantity)")
    gpu: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per pod")

    @property
    def millicpu(self) -> int:
        return int(kubernetes.parse_quantity(self.cpu) * 1000)

    @property
    def memory_mib(self) -> float:
        return float(kubernetes.parse_quantity(self.memory) / 2**20)


class HeadSettings(PodResources):
    """The Ray head pod."""

    num_cpus: Optional[float] = Field(None, ge=0, le=1024, description="Ray logical CPUs; 0 keeps work off the head")
    node_group: Optional[str] = Field(None, description="EKS node group to run on")


class WorkerGroup(PodResources):
    """A Ray worker group."""

    name: Dns1123Label = Field(description="worker group name (KubeRay puts it in pod names and a label)")
    replicas: int = Field(1, ge=0, description="pods at creation")
    min_replicas: int = Field(1, ge=0, description="fewest pods the autoscaler keeps")
    max_replicas: int = Field(3, ge=0, description="most pods the autoscaler starts")
    node_group: Optional[str] = Field(None, description="EKS node group to run on")

    @model_validator(mode="after")
    def _replicas(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"worker group {self.name}: min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(f"worker group {self.name}: replicas must lie within [min_replicas, max_replicas]")
        return self


class ExternalRedis(Strict):
    """A Redis the stack does not deploy (ElastiCache, your own), for GCS fault tolerance."""

    address: str = Field(pattern=r"^(rediss?://)?[A-Za-z0-9.-]+:[0-9]{1,5}$", description="host:port (rediss:// for TLS)")
    password_secret: Dns1123Label = Field(description="Kubernetes Secret in the RayService's namespace holding the password")
    password_key: str = Field("password", description="key of the password in that Secret")


class CheckpointSettings(Strict):
    """Durable state: Redis for GCS fault tolerance, and a shared model cache."""

    gcs_fault_tolerance: bool = Field(True, description="Redis-backed GCS, so Serve survives a head restart")
    redis_storage_gi: int = Field(8, ge=1, description="Redis volume size")
    external_redis: Optional[ExternalRedis] = Field(None, description="use this Redis instead of deploying one")
    model_cache_gi: Optional[int] = Field(None, ge=1, description="ReadWriteMany model cache (HF_HOME) size")

    @model_validator(mode="after")
    def _external(self):
        if self.external_redis and not self.gcs_fault_tolerance:
            raise ValueError("external_redis is for GCS fault tolerance: set gcs_fault_tolerance true or drop it")
        return self


class RayServiceSettings(LoadBalancerSettings):
    """The KubeRay RayService (EKS)."""

    name: str = Field("rayserve", description="RayService name (DNS-1035, at most 47 characters)")
    namespace: Dns1123Label = Field("ray", description="namespace of the RayService and its storage")
    ray_version: str = Field(RAY_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="Ray version of the image")
    head: HeadSettings = Field(HeadSettings(), description="the head pod")
    worker_groups: list[WorkerGroup] = Field(default_factory=lambda: [WorkerGroup(name="cpu")],
                                             description="worker groups")
    enable_autoscaling: bool = Field(True, description="KubeRay's in-tree autoscaler")
    upgrade_strategy: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = Field(
        "NewCluster", description="what KubeRay does when the cluster spec changes")
    auth_mode: Literal["token", "disabled"] = Field("token", description="Ray token authentication")
    service_type: Literal["LoadBalancer", "ClusterIP"] = Field(
        "ClusterIP", description="type of the Serve Service KubeRay manages (spec.serveService)")
    exclude_head_from_serve: bool = Field(False, description="keep the head pod out of the Serve Service "
                                          "(excludeHeadPodFromServeSvc): traffic goes to workers only")
    ready_timeout_s: int = Field(1800, ge=60, le=21600, description="how long `pulumi up` waits for the "
                                 "RayService to be Ready with no upgrade in progress before failing")
    checkpoint: CheckpointSettings = Field(CheckpointSettings(), description="GCS fault tolerance and model cache")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > MAX_RAYSERVICE_NAME:
            raise ValueError(f"name {v!r} is {len(v)} characters; KubeRay allows at most {MAX_RAYSERVICE_NAME}")
        return kubernetes.dns1035_label(v, MAX_RAYSERVICE_NAME)

    @model_validator(mode="after")
    def _groups(self):
        if (self.load_balancer_scheme == "internet-facing" or self.tls_certificate_arn) and self.service_type != "LoadBalancer":
            raise ValueError("load_balancer_scheme and tls_certificate_arn are for the load balancer: set service_type "
                             "LoadBalancer")
        if (error := self.allow_list_errors()):
            raise ValueError(error)
        if self.exclude_head_from_serve and not self.worker_groups:
            raise ValueError("exclude_head_from_serve leaves no pod to serve traffic: add a worker group")
        names = [g.name for g in self.worker_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"worker group names must be unique: {names}")
        return self

    @field_validator("upgrade_strategy")
    @classmethod
    def _upgrade(cls, v: str) -> str:
        if v == "NewClusterWithIncrementalUpgrade":
            raise ValueError("NewClusterWithIncrementalUpgrade needs KubeRay's RayServiceIncrementalUpgrade feature "
                             "gate, a Gateway API controller and clusterUpgradeOptions, which this package does not "
                             "render yet; use NewCluster or None")
        return v


class VmSettings(LoadBalancerSettings):
    """The EC2 VM platform."""

    vpc_cidr: VpcCidr = Field("10.20.0.0/16", description="VPC IPv4 CIDR")
    head_instance_type: InstanceType = Field("m6i.xlarge", description="head instance type")
    worker_instance_type: InstanceType = Field("m6i.xlarge", description="worker instance type")
    worker_min: int = Field(1, ge=0, description="fewest workers")
    worker_desired: int = Field(1, ge=0, description="workers at creation")
    worker_max: int = Field(3, ge=0, description="most workers")
    ami_id: Optional[str] = Field(None, description="AMI (default: the ECS-optimised Amazon Linux 2023, with Docker)")
    root_volume_gb: int = Field(100, ge=30, description="root volume size")
    checkpoint_volume_gb: int = Field(50, ge=1, description="head's retained EBS volume (GCS Redis, model cache)")
    s3_bucket_arn: Optional[str] = Field(None, description="a bucket the nodes may read and write")
    config_poll_seconds: int = Field(30, ge=5, description="how often the head applies the Serve config from SSM")
    ssm_session_access: bool = Field(True, description="Session Manager (port-forwarding to the dashboard): the "
                                     "Session Manager channel actions only, never account-wide parameter reads")

    @field_validator("ami_id")
    @classmethod
    def _ami(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else aws.ami_id(v)

    @field_validator("s3_bucket_arn")
    @classmethod
    def _bucket(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else aws.s3_bucket_arn(v)

    @model_validator(mode="after")
    def _sizes(self):
        if not self.worker_min <= self.worker_desired <= self.worker_max:
            raise ValueError("need worker_min <= worker_desired <= worker_max")
        if (error := self.allow_list_errors()):
            raise ValueError(error)
        return self


class StackConfig(Strict):
    """Everything a stack can set, under the `rayserve:` config namespace."""

    platform: Literal[tuple(PLATFORMS)] = Field("local", description="which registered platform deploys the stack")
    name: str = Field("rayserve", pattern=r"^[a-z][a-z0-9-]{0,23}$", description="prefix of every resource name")
    serve: ServeSettings = Field(ServeSettings(), description="Serve applications and overrides")
    local: LocalSettings = Field(LocalSettings(), description="platform local")
    image: ImageSettings = Field(ImageSettings(), description="the Serve image (eks, vm: uri or build; kubernetes: uri)")
    eks: Optional[EksSettings] = Field(None, description="platform eks: the cluster")
    kuberay: KubeRaySettings = Field(KubeRaySettings(), description="platforms eks and kubernetes: the operator")
    ray_service: RayServiceSettings = Field(RayServiceSettings(), description="platforms eks and kubernetes: the "
                                            "RayService")
    vm: Optional[VmSettings] = Field(None, description="platform vm")
    kubernetes: Optional[KubernetesSettings] = Field(None, description="platform kubernetes: an existing cluster")
    metrics: MetricsSettings = Field(MetricsSettings(), description="Prometheus, Ray's dashboards and alert rules")
    tags: dict[str, str] = Field(default_factory=dict, description="AWS tags on every resource")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 40:
            raise ValueError(f"{len(v)} tags; AWS allows 50 per resource and the stack adds its own (at most 40)")
        for key, value in v.items():
            aws.tag(key, value)
        return v

    @model_validator(mode="after")
    def _platform_sections(self):
        from rayserve_pulumi.registry import platform

        errors = platform(self.platform).section_errors(self)
        if errors:
            raise ValueError(errors[0])
        return self


def check_node_groups(rs: RayServiceSettings, eks: Optional[EksSettings]) -> None:
    """Ray pods must name existing node groups, and GPU requests must land on a GPU node group."""
    for where, spec in [("head", rs.head), *((f"worker_groups.{g.name}", g) for g in rs.worker_groups)]:
        if spec.node_group and (eks is None or eks.group(spec.node_group) is None):
            raise ValueError(f"ray_service.{where}.node_group {spec.node_group!r} is not an eks node group")
        if spec.gpu and not (eks and eks.is_gpu_group(spec.node_group)):
            raise ValueError(f"ray_service.{where} requests {spec.gpu} GPU(s) but node_group "
                             f"{spec.node_group!r} is not a GPU node group")
