"""KubeRayServe: everything a Kubernetes cluster needs to serve the stack's apps with KubeRay, on any cluster.

The operator (installed, or one the cluster already runs), the RayService's namespace, its checkpoint storage
(GCS fault-tolerance Redis on a StorageClass the caller names; a ReadWriteMany model cache), its monitoring
and the RayService with its NetworkPolicies. The cluster comes in as the Kubernetes provider of `opts`;
what is cloud specific (node placement, the load balancer's annotations, the StorageClasses) comes in as
plain values. The `eks` platform is an EKS cluster plus this; the `kubernetes` platform is this alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.stack import KubeRaySettings, MetricsSettings, RayServiceSettings
from rayserve_pulumi.kuberay.gateway import EnvoyGateway, EnvoyGatewayArgs
from rayserve_pulumi.kuberay.monitoring import RayMonitoring, RayMonitoringArgs, head_env, service_urls
from rayserve_pulumi.kuberay.operator import KubeRayOperator, KubeRayOperatorArgs
from rayserve_pulumi.kuberay import network
from rayserve_pulumi.kuberay.rayservice import RayService, RayServiceArgs
from rayserve_pulumi.kuberay.rollout_gate import RolloutGate, RolloutGateArgs
from rayserve_pulumi.kuberay.security import pod_security_labels
from rayserve_pulumi.kuberay.settings import gate_errors, gate_needed
from rayserve_pulumi.kuberay.storage import CheckpointStorage, CheckpointStorageArgs
from rayserve_pulumi.rollout.settings import RolloutSettings

__all__ = ["KubeRayServeArgs", "KubeRayServe"]


@dataclass(frozen=True)
class KubeRayServeArgs:
    ray_service: RayServiceSettings = arg("the RayService: groups, autoscaling, upgrades, checkpoint storage")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    image: pulumi.Input[str] = arg("the Serve image, pinned by digest or version tag")
    storage_class: Optional[pulumi.Input[str]] = arg("ReadWriteOnce StorageClass of the GCS Redis volume "
                                                     "(needed with gcs_fault_tolerance and no external Redis)", None)
    model_cache_storage_class: Optional[pulumi.Input[str]] = arg("ReadWriteMany StorageClass of the model cache "
                                                                 "(needed with checkpoint.model_cache_gi)", None)
    kuberay: KubeRaySettings = arg("the operator's Helm chart and namespace", default_factory=KubeRaySettings)
    install_operator: bool = arg("install the KubeRay operator; false uses the one in kuberay.namespace", True)
    placements: Optional[dict] = arg("HEAD / worker group name -> Placement (node selector, tolerations)", None)
    service_annotations: Optional[pulumi.Input[dict]] = arg("annotations of a LoadBalancer Serve Service (cloud "
                                                            "specific; values may be Outputs)", None)
    tls: bool = arg("the load balancer terminates TLS on 443 (its annotations carry the certificate)", False)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("the Serve load balancer's source ranges (e.g. another "
                                                               "stack's output); default ray_service.allowed_cidrs", None)
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=dict)
    api_server_cidrs: Optional[Sequence[pulumi.Input[str]]] = arg(
        "where the Kubernetes API server's endpoints are (the head's autoscaler reaches them on 443): egress from "
        "the Ray namespace is then contained to what Ray needs; None: egress is not restricted", None)
    metrics: MetricsSettings = arg("kube-prometheus-stack, PodMonitors, alert rules, Ray's dashboards",
                                   default_factory=MetricsSettings)
    rollout: RolloutSettings = arg("the gate of an incremental upgrade (ray_service.upgrade_strategy "
                                   "NewClusterWithIncrementalUpgrade; needs metrics with install_operator)",
                                   default_factory=RolloutSettings)
    previous_parent: Optional[pulumi.Resource] = arg("the resource these children were declared under before "
                                                     "(EksPlatform): aliases keep them through an upgrade", None)


class KubeRayServe(pulumi.ComponentResource):
    """Outputs `app_urls`, `dashboard_hint`, `app_status`, `port_forward`, and with metrics on `grafana` and
    `prometheus` (port-forward commands)."""

    def __init__(self, name: str, args: KubeRayServeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        rs = args.ray_service
        if (error := rs.open_endpoint_error("ray_service", cidrs_elsewhere=args.allowed_cidrs is not None)):
            raise ConfigError(f"rayserve: {error}")  # before any child exists
        if (errors := gate_errors(rs, args.rollout, args.metrics, rollout_set=False)):
            raise ConfigError(f"rayserve: {errors[0]}")
        super().__init__("rayserve:kuberay:KubeRayServe", name, None, opts)
        aliases = [pulumi.Alias(parent=args.previous_parent)] if args.previous_parent is not None else None
        child = pulumi.ResourceOptions(parent=self, aliases=aliases)
        self.operator = (KubeRayOperator(f"{name}-kuberay", KubeRayOperatorArgs(
            settings=args.kuberay, watch_namespaces=[rs.namespace]), child) if args.install_operator else None)
        self.namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={
            "name": rs.namespace, "labels": pod_security_labels("restricted")}, opts=child)
        self.storage = None
        if rs.checkpoint.gcs_fault_tolerance or rs.checkpoint.model_cache_gi:
            self.storage = CheckpointStorage(f"{name}-ckpt", CheckpointStorageArgs(
                namespace=self.namespace.metadata.name, settings=rs.checkpoint, storage_class=args.storage_class,
                model_cache_storage_class=args.model_cache_storage_class), child)
        metrics = args.metrics
        self.monitoring = None
        if metrics.enabled:
            self.monitoring = RayMonitoring(f"{name}-monitoring", RayMonitoringArgs(
                settings=metrics, service=rs.name, namespace=rs.namespace, storage_class=args.storage_class), child)
        self.gateway = None
        if rs.incremental_upgrade is not None and rs.incremental_upgrade.install_gateway_controller:
            self.gateway = EnvoyGateway(f"{name}-envoy-gateway", EnvoyGatewayArgs(
                gateway_class=rs.incremental_upgrade.gateway_class), child)
        gated = gate_needed(rs, args.rollout, metrics)
        egress = network.Egress(args.api_server_cidrs, https=rs.egress == "https") if args.api_server_cidrs else None
        self.service = RayService(
            f"{name}-rayservice",
            RayServiceArgs(settings=rs, serve_config=args.serve_config, image=args.image, placements=args.placements,
                           storage=self.storage, serve_env=args.serve_env, service_annotations=args.service_annotations,
                           tls=args.tls, allowed_cidrs=args.allowed_cidrs,
                           operator_namespace=args.kuberay.namespace,
                           metrics_namespace=metrics.namespace if metrics.enabled else None,
                           egress=egress, gated=gated,
                           head_env=head_env(metrics.namespace) if metrics.own_prometheus else None),
            pulumi.ResourceOptions(parent=self, aliases=aliases, depends_on=[
                *([self.operator] if self.operator else []), self.namespace, *([self.storage] if self.storage else []),
                *([self.gateway] if self.gateway else [])]),
        )
        self.gate = None
        if gated:  # beside the RayService, not after it: `up` waits on the RayService for the gate's verdict
            self.gate = RolloutGate(f"{name}-rollout-gate", RolloutGateArgs(
                settings=rs, thresholds=args.rollout.thresholds(), image=args.image,
                prometheus_url=service_urls(metrics.namespace)["prometheus"], monitoring_namespace=metrics.namespace,
                egress=egress), pulumi.ResourceOptions(parent=self, aliases=aliases, depends_on=[self.namespace]))
        self.app_urls = self.service.app_urls
        self.dashboard_hint = self.service.dashboard_hint
        self.app_status = self.service.app_status
        self.port_forward = self.service.port_forward
        self.register_outputs({"app_urls": self.app_urls, "dashboard_hint": self.dashboard_hint,
                               "app_status": self.app_status, "port_forward": self.port_forward})

    def monitoring_outputs(self) -> dict:
        """`grafana` and `prometheus` (port-forward commands) with metrics on, else nothing."""
        return {"grafana": self.monitoring.grafana, "prometheus": self.monitoring.prometheus} if self.monitoring else {}
