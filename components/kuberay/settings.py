"""The KubeRay platforms' settings (`rayserve:kuberay`, `rayserve:ray_service`): the operator's chart, the
RayService's pods, autoscaling, upgrades and checkpoint storage. Shared by `eks` and `kubernetes`."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.config import kubernetes
from rayserve_pulumi.config.load_balancer import LoadBalancerScope
from rayserve_pulumi.config.types import Dns1123Label, Quantity, Strict
from rayserve_pulumi.constants import KUBERAY_CHART_REPOSITORY, KUBERAY_CHART_VERSION, RAY_VERSION

__all__ = [
    "MAX_RAYSERVICE_NAME", "KubeRaySettings", "PodResources", "HeadSettings", "WorkerGroup", "ExternalRedis",
    "CheckpointSettings", "IncrementalUpgrade", "INCREMENTAL_UPGRADE", "INCREMENTAL_MIN_CHART", "RayServiceSettings",
    "gate_needed", "gate_errors",
]

# KubeRay derives Service and pod names from the RayService name; it must stay <= 47 characters.
MAX_RAYSERVICE_NAME = 47


class KubeRaySettings(Strict):
    """The KubeRay operator's Helm release."""

    chart_version: str = Field(KUBERAY_CHART_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
                               description="kuberay-operator chart version (pinned, x.y.z)")
    namespace: Dns1123Label = Field("kuberay-system", description="operator namespace")
    repository: str = Field(KUBERAY_CHART_REPOSITORY, pattern=r"^(https|oci)://[^\s]+$", description="Helm repository")


# KubeRay's autoscaler sidecar on the head (autoscalerOptions.resources): its requests count toward the pod's
AUTOSCALER_RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}


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


INCREMENTAL_UPGRADE = "NewClusterWithIncrementalUpgrade"
# the first kuberay-operator chart that turns its RayServiceIncrementalUpgrade feature gate on by default (its
# values.yaml: false in 1.5 and 1.6); without the gate the operator ignores clusterUpgradeOptions
INCREMENTAL_MIN_CHART = (1, 7, 0)


class IncrementalUpgrade(Strict):
    """KubeRay's NewClusterWithIncrementalUpgrade (`upgradeStrategy.clusterUpgradeOptions`): a new cluster comes up
    beside the serving one and traffic moves to it in steps through a Gateway KubeRay creates with this class.
    The ranges are KubeRay's own (its ValidateClusterUpgradeOptions)."""

    gateway_class: str = Field(description="the GatewayClass of the cluster's Gateway API controller (e.g. Envoy "
                               "Gateway's, Istio's): KubeRay's Gateway and HTTPRoute use it")
    step_size_percent: int = Field(20, ge=1, le=100, description="traffic moved to the new cluster per step")
    interval_s: int = Field(30, ge=1, le=3600, description="seconds between steps (KubeRay's intervalSeconds)")
    max_surge_percent: int = Field(100, ge=1, le=100, description="capacity the new cluster may add beyond the "
                                   "serving one's, in percent of it (KubeRay's maxSurgePercent)")
    install_gateway_controller: bool = Field(False, description="install Envoy Gateway (pinned chart, with the "
                                             "Gateway API CRDs) and a GatewayClass gateway_class owned by it; false: "
                                             "a controller of the cluster owns the class")

    @field_validator("gateway_class")
    @classmethod
    def _class(cls, v: str) -> str:
        return kubernetes.dns1123_subdomain(v)  # a GatewayClass is a cluster object: its name is a subdomain

    @model_validator(mode="after")
    def _steps(self):
        if self.step_size_percent > self.max_surge_percent:
            raise ValueError(f"step_size_percent {self.step_size_percent} exceeds max_surge_percent "
                             f"{self.max_surge_percent}; KubeRay needs step <= surge")
        return self

    def options(self) -> dict:
        """`spec.upgradeStrategy.clusterUpgradeOptions` as KubeRay reads it."""
        return {"gatewayClassName": self.gateway_class, "stepSizePercent": self.step_size_percent,
                "intervalSeconds": self.interval_s, "maxSurgePercent": self.max_surge_percent}


class RayServiceSettings(LoadBalancerScope):
    """The KubeRay RayService (EKS)."""

    name: str = Field("rayserve", description="RayService name (DNS-1035, at most 47 characters)")
    namespace: Dns1123Label = Field("ray", description="namespace of the RayService and its storage")
    ray_version: str = Field(RAY_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="Ray version of the image")
    head: HeadSettings = Field(HeadSettings(), description="the head pod")
    worker_groups: list[WorkerGroup] = Field(default_factory=lambda: [WorkerGroup(name="cpu")],
                                             description="worker groups")
    enable_autoscaling: bool = Field(True, description="KubeRay's in-tree autoscaler")
    upgrade_strategy: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = Field(
        "NewCluster", description="what KubeRay does when the cluster spec changes: a new cluster that takes all "
        "traffic once ready, the same moving traffic in steps (needs incremental_upgrade), or nothing")
    incremental_upgrade: Optional[IncrementalUpgrade] = Field(
        None, description="upgrade_strategy NewClusterWithIncrementalUpgrade: the Gateway class and the steps")
    auth_mode: Literal["token", "disabled"] = Field("token", description="Ray token authentication")
    service_type: Literal["LoadBalancer", "ClusterIP"] = Field(
        "ClusterIP", description="type of the Serve Service KubeRay manages (spec.serveService)")
    exclude_head_from_serve: bool = Field(False, description="keep the head pod out of the Serve Service "
                                          "(excludeHeadPodFromServeSvc): traffic goes to workers only")
    egress: Literal["contained", "https"] = Field(
        "contained", description="what Ray pods may reach beyond the cluster's DNS, each other, their Redis and "
        "the API server: nothing (contained), or any address on 443 (https: e.g. a model hub the apps download "
        "from; bake models into the image to stay contained)")
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
        if self.load_balancer_scheme == "internet-facing" and self.service_type != "LoadBalancer":
            raise ValueError("load_balancer_scheme is the load balancer's: set service_type LoadBalancer")
        if (error := self.allow_list_errors()):
            raise ValueError(error)
        if self.exclude_head_from_serve and not self.worker_groups:
            raise ValueError("exclude_head_from_serve leaves no pod to serve traffic: add a worker group")
        names = [g.name for g in self.worker_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"worker group names must be unique: {names}")
        return self

    @model_validator(mode="after")
    def _incremental(self):
        """Refused only where KubeRay cannot do it (its ValidateClusterUpgradeOptions, and its Serve Service)."""
        if self.upgrade_strategy != INCREMENTAL_UPGRADE:
            if self.incremental_upgrade is not None:
                raise ValueError(f"incremental_upgrade is for upgrade_strategy {INCREMENTAL_UPGRADE}: set that "
                                 "strategy or drop incremental_upgrade")
            return self
        if self.incremental_upgrade is None:
            raise ValueError(f"upgrade_strategy {INCREMENTAL_UPGRADE} needs incremental_upgrade.gateway_class (the "
                             "GatewayClass of the cluster's Gateway API controller)")
        if not self.enable_autoscaling:
            raise ValueError(f"upgrade_strategy {INCREMENTAL_UPGRADE} needs enable_autoscaling true: KubeRay "
                             "scales both clusters through Ray's autoscaler")
        if self.service_type != "ClusterIP":
            raise ValueError(f"upgrade_strategy {INCREMENTAL_UPGRADE} serves through the Gateway of "
                             "incremental_upgrade.gateway_class (KubeRay ignores spec.serveService): set service_type "
                             "ClusterIP and expose the Gateway's class instead")
        return self


def gate_needed(rs: RayServiceSettings, rollout, metrics) -> bool:
    """Whether a rollout gate (kuberay.rollout_gate) watches the RayService: an incremental upgrade, `rollout`
    on, and the stack's own Prometheus to read Serve's metrics from."""
    return rs.incremental_upgrade is not None and rollout.enabled and metrics.own_prometheus


def gate_errors(rs: RayServiceSettings, rollout, metrics, rollout_set: bool) -> list[str]:
    """What a KubeRay stack's `rollout` cannot do (`rollout_set`: the stack wrote the section). The gate steps
    nothing itself: KubeRay moves the traffic, so `rollout.steps` is not read here."""
    errors = []
    if "steps" in rollout.model_fields_set:
        errors.append("rollout.steps: on KubeRay traffic moves by ray_service.incremental_upgrade.step_size_percent "
                      "every interval_s")
    if rs.upgrade_strategy == INCREMENTAL_UPGRADE and rollout.enabled and not metrics.own_prometheus:
        errors.append(f"ray_service.upgrade_strategy {INCREMENTAL_UPGRADE} is gated by `rollout` (on by default), "
                      "which reads Serve's metrics from the stack's own Prometheus: set metrics.enabled (with "
                      "metrics.install_operator), or rollout.enabled: false")
    if rollout_set and rollout.enabled and rs.upgrade_strategy != INCREMENTAL_UPGRADE:
        errors.append(f"rollout gates an incremental upgrade on KubeRay: set ray_service.upgrade_strategy "
                      f"{INCREMENTAL_UPGRADE} (with incremental_upgrade), or rollout.enabled: false")
    return errors
