"""RayService: a KubeRay `ray.io/v1` RayService running the validated Serve config.

Cloud-neutral: where pods run (node selectors, tolerations) and how the Serve Service is annotated
come in as plain values from the platform. `render_rayservice` is a pure function (plain values in,
manifest dict out) so the rendered spec can be checked against the KubeRay CRD schema.

- The Serve config lives only in `spec.serveConfigV2`: changing it never touches `rayClusterConfig`,
  so KubeRay applies it in place instead of rolling a new cluster.
- The Serve endpoint is the Service KubeRay manages (`spec.serveService`), which KubeRay re-points
  from the old cluster to the new one during an upgrade; Pulumi never owns a selector of Ray pods.
- `pulumi up` waits until the RayService is Ready with no upgrade in progress and every application of the
  Serve config is RUNNING (pulumi-kubernetes' `pulumi.com/waitFor`; KubeRay's Ready only means "serve
  endpoints > 0", which a config-only change that ends DEPLOY_FAILED keeps), or fails after
  `ready_timeout_s` with the conditions KubeRay reported.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.serve import app_urls, serve_port, to_yaml
from rayserve_pulumi.config.stack import HeadSettings, PodResources, RayServiceSettings, WorkerGroup
from rayserve_pulumi.kuberay.settings import AUTOSCALER_RESOURCES
from rayserve_pulumi.config.types import AllowListCidr
from rayserve_pulumi.inputs import checked
from rayserve_pulumi.constants import (
    CLIENT_PORT, DASHBOARD_PORT, DO_NOT_DISRUPT, GCS_PORT, GPU_RESOURCE, MODEL_CACHE_PATH, ROLLOUT_VERDICT_ANNOTATION,
    SERVICE_LABEL, SPEC_VERSION_ANNOTATION, TLS_PORT,
)
from rayserve_pulumi.kuberay import network
from rayserve_pulumi.kuberay.monitoring import HEAD_METRICS_PORTS, METRICS_PORTS, WORKER_METRICS_PORTS
from rayserve_pulumi.kuberay.storage import CheckpointStorage, GcsStorageRef
from rayserve_pulumi.rollout.kuberay_gate import PROMOTED

__all__ = [
    "API_VERSION", "WAIT_FOR", "wait_for", "spec_version", "HEAD", "AUTOSCALER_RESOURCES", "POD_SECURITY",
    "CONTAINER_SECURITY",
    "GPU_TOLERATION", "Placement", "render_head_pdb", "serve_service_name", "render_serve_service", "render_rayservice",
    "application_statuses", "GATEWAY_PORT", "gateway_name", "gateway_base", "GatewayRead", "RayServiceResource", "RayServiceArgs", "RayService",
]

API_VERSION = "ray.io/v1"
WAIT_FOR = ("condition=Ready", "condition=UpgradeInProgress=False")  # KubeRay's RayService conditions
APP_STATUS_PATH = ".status.activeServiceStatus.applicationStatuses"


def wait_for(serve_config: dict, version: Optional[str] = None) -> str:
    """`pulumi.com/waitFor`: KubeRay's conditions, and each application RUNNING on the cluster that serves
    (kubectl-wait JSONPath; names that are not plain identifiers in bracket form); with the rollout gate's
    spec `version`, also the gate's verdict that this version was promoted (a rolled-back one never is)."""
    def path(app: str) -> str:
        key = f".{app}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", app) else f"['{app}']"
        return f"jsonpath={{{APP_STATUS_PATH}{key}.status}}=RUNNING"
    verdict = [f"jsonpath={{.metadata.annotations['{ROLLOUT_VERDICT_ANNOTATION}']}}={PROMOTED}{version}"] if version else []
    return json.dumps([*WAIT_FOR, *(path(a["name"]) for a in serve_config["applications"]), *verdict])


def spec_version(spec: dict) -> str:
    """A rendered spec's version for the rollout gate: the first 16 hex digits of its canonical JSON's SHA-256."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


HEAD = "head"  # the placements key of the head group (worker groups use their names)
RAY_UID, RAY_GID = 1000, 100  # the `ray` user and `users` group of rayproject/ray images
# Ray runs unprivileged: not root, no privilege escalation, no Linux capabilities, the runtime's seccomp profile.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": RAY_UID, "runAsGroup": RAY_GID, "fsGroup": RAY_GID,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Placement:
    """Where one Ray group's pods run, as plain Kubernetes values chosen by the platform."""

    node_selector: Optional[dict] = arg("pod nodeSelector", None)
    tolerations: Optional[list] = arg("pod tolerations", None)


def _resources(spec: PodResources) -> dict:
    amounts = {"cpu": spec.cpu, "memory": spec.memory}
    limits = {**amounts, **({GPU_RESOURCE: spec.gpu} if spec.gpu else {})}
    return {"requests": dict(limits), "limits": limits}


def _pod_template(container: str, image: str, spec: PodResources, placement: Placement, labels: dict,
                  ports: list[dict], storage: Optional[GcsStorageRef], serve_env: dict, env: Optional[dict] = None) -> dict:
    mounts = [{"name": "ray-logs", "mountPath": "/tmp/ray"}]
    volumes = [{"name": "ray-logs", "emptyDir": {}}]
    if storage and storage.model_cache_claim:
        mounts.append({"name": "model-cache", "mountPath": MODEL_CACHE_PATH})
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": storage.model_cache_claim}})
    pod: dict = {
        "containers": [{
            "name": container,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "resources": _resources(spec),
            "ports": ports,
            "env": [{"name": "HF_HOME", "value": MODEL_CACHE_PATH},
                    *({"name": k, "value": v} for k, v in {**serve_env, **(env or {})}.items())],
            # inside the container's own PID namespace: the processes `ray stop` finds are this pod's
            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
            "securityContext": dict(CONTAINER_SECURITY),
            "volumeMounts": mounts,
        }],
        "securityContext": dict(POD_SECURITY),
        "volumes": volumes,
    }
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = list(placement.tolerations)
    return {"metadata": {"labels": labels}, "spec": pod}


def _metrics_ports(names) -> list[dict]:
    return [{"containerPort": METRICS_PORTS[n], "name": n} for n in names]


def _head_group(head: HeadSettings, image: str, placement: Placement, labels: dict, port: int, storage,
                serve_env: dict, env: Optional[dict] = None) -> dict:
    """The head group; its pod is never disrupted voluntarily (a node autoscaler's consolidation would restart
    the whole Serve control plane): Karpenter's do-not-disrupt annotation, and a PodDisruptionBudget."""
    params = {"dashboard-host": "0.0.0.0", "metrics-export-port": str(METRICS_PORTS["metrics"])}
    if head.num_cpus is not None:
        params["num-cpus"] = str(int(head.num_cpus) if float(head.num_cpus).is_integer() else head.num_cpus)
    ports = [{"containerPort": GCS_PORT, "name": "gcs-server"}, {"containerPort": DASHBOARD_PORT, "name": "dashboard"},
             {"containerPort": CLIENT_PORT, "name": "client"}, {"containerPort": port, "name": "serve"},
             *_metrics_ports(HEAD_METRICS_PORTS)]
    template = _pod_template("ray-head", image, head, placement, labels, ports, storage, serve_env, env)
    template["metadata"]["annotations"] = {DO_NOT_DISRUPT: "true"}
    return {"rayStartParams": params, "template": template}


def _worker_group(g: WorkerGroup, image: str, placement: Placement, labels: dict, port: int, storage,
                  serve_env: dict) -> dict:
    return {
        "groupName": g.name,
        "replicas": g.replicas,
        "minReplicas": g.min_replicas,
        "maxReplicas": g.max_replicas,
        "rayStartParams": {"metrics-export-port": str(METRICS_PORTS["metrics"])},
        "template": _pod_template("ray-worker", image, g, placement, labels,
                                  [{"containerPort": port, "name": "serve"}, *_metrics_ports(WORKER_METRICS_PORTS)],
                                  storage, serve_env),
    }


def render_head_pdb(s: RayServiceSettings) -> dict:
    """The head's PodDisruptionBudget: an eviction (a drain, a consolidation) waits while the head is the only
    one; KubeRay itself still replaces it on an upgrade (a delete, not an eviction)."""
    return {"metadata": {"name": f"{s.name}-head", "namespace": s.namespace},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {SERVICE_LABEL: s.name, **network.HEAD_LABEL}}}}


def serve_service_name(s: RayServiceSettings) -> str:
    """The Serve Service KubeRay manages for this RayService."""
    return f"{s.name}-serve-svc"


def render_serve_service(s: RayServiceSettings, port: int, annotations: Optional[dict], tls: bool = False,
                         allowed_cidrs: Optional[list[str]] = None) -> dict:
    """spec.serveService: KubeRay owns its selector and points it at the cluster that serves; with `tls` the
    load balancer (its annotations, the platform's) terminates TLS on 443; `allowed_cidrs` (default the
    settings') are its source ranges."""
    listen = (TLS_PORT, "https") if tls else (port, "serve")
    spec: dict = {"type": s.service_type, "ports": [{"name": listen[1], "port": listen[0], "targetPort": port}]}
    sources = s.allowed_cidrs if allowed_cidrs is None else allowed_cidrs
    if sources:
        spec["loadBalancerSourceRanges"] = list(sources)
    metadata: dict = {"name": serve_service_name(s)}
    if annotations and s.service_type == "LoadBalancer":
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": spec}


def render_rayservice(s: RayServiceSettings, serve_config: dict, image: str,
                      placements: Optional[dict[str, Placement]] = None, storage: Optional[GcsStorageRef] = None,
                      serve_env: Optional[dict] = None, service_annotations: Optional[dict] = None,
                      head_env: Optional[dict] = None, tls: bool = False,
                      allowed_cidrs: Optional[list[str]] = None, gated: bool = False) -> dict:
    """The full RayService manifest (plain values only). `placements` is keyed by HEAD and worker group names;
    `service_annotations` are the platform's for a LoadBalancer Serve Service; `head_env` extra head variables.
    `gated` (a rollout gate watches it): the spec's version is annotated, `pulumi up` waits for the gate to
    promote it, and Pulumi takes back the fields the gate wrote when it rolled back (`pulumi.com/patchForce`)."""
    placements = placements or {}
    port = serve_port(serve_config)
    labels = {SERVICE_LABEL: s.name}
    cluster: dict = {
        "rayVersion": s.ray_version,
        "authOptions": {"mode": s.auth_mode},
        "enableInTreeAutoscaling": s.enable_autoscaling,
        "headGroupSpec": _head_group(s.head, image, placements.get(HEAD, Placement()), labels, port, storage,
                                     serve_env or {}, head_env),
        "workerGroupSpecs": [_worker_group(g, image, placements.get(g.name, Placement()), labels, port, storage,
                                           serve_env or {})
                             for g in s.worker_groups],
    }
    if s.enable_autoscaling:
        cluster["autoscalerOptions"] = {"upscalingMode": "Default", "idleTimeoutSeconds": 60,
                                        "resources": AUTOSCALER_RESOURCES, "securityContext": dict(CONTAINER_SECURITY)}
    if storage and storage.redis_address:
        cluster["gcsFaultToleranceOptions"] = {
            "redisAddress": storage.redis_address,
            "redisPassword": {"valueFrom": {"secretKeyRef": {"name": storage.password_secret, "key": storage.password_key}}},
        }
    upgrade: dict = {"type": s.upgrade_strategy}
    spec: dict = {"upgradeStrategy": upgrade}
    if s.incremental_upgrade is not None:  # KubeRay serves through its Gateway and ignores spec.serveService
        upgrade["clusterUpgradeOptions"] = s.incremental_upgrade.options()
    else:
        spec["serveService"] = render_serve_service(s, port, service_annotations, tls, allowed_cidrs)
    spec.update({"excludeHeadPodFromServeSvc": s.exclude_head_from_serve, "serveConfigV2": to_yaml(serve_config),
                 "rayClusterConfig": cluster})
    version = spec_version(spec) if gated else None
    annotations = {"pulumi.com/waitFor": wait_for(serve_config, version),
                   "pulumi.com/timeoutSeconds": str(s.ready_timeout_s)}
    if version:
        annotations.update({SPEC_VERSION_ANNOTATION: version, "pulumi.com/patchForce": "true"})
    return {
        "apiVersion": API_VERSION,
        "kind": "RayService",
        "metadata": {"name": s.name, "namespace": s.namespace, "labels": {"app.kubernetes.io/managed-by": "pulumi"},
                     "annotations": annotations},
        "spec": spec,
    }


def application_statuses(status: Optional[dict]) -> dict[str, str]:
    """Application -> status, as KubeRay reports it for the cluster that serves."""
    apps = ((status or {}).get("activeServiceStatus") or {}).get("applicationStatuses") or {}
    return {name: (app or {}).get("status", "UNKNOWN") for name, app in apps.items()}


GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_PORT = 80  # the HTTP listener of the Gateway KubeRay creates (its DefaultGatewayListenerPort)


def gateway_name(s: RayServiceSettings) -> str:
    """The Gateway KubeRay creates for a RayService under NewClusterWithIncrementalUpgrade."""
    return f"{s.name}-gateway"


def gateway_base(status: Optional[dict]) -> str:
    """The Gateway's first address as its controller reports it (`status.addresses`), or 'pending'."""
    addresses = (status or {}).get("addresses") or []
    return f"http://{addresses[0].get('value') if addresses else 'pending'}:{GATEWAY_PORT}"


class GatewayRead(pulumi.CustomResource):
    """KubeRay's Gateway, read (not owned) for its address: with an incremental upgrade, clients enter there."""

    status: pulumi.Output[dict]

    def __init__(self, name: str, id_: str, opts: Optional[pulumi.ResourceOptions] = None):
        from importlib.metadata import version

        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id_, version=version("pulumi-kubernetes")))
        super().__init__(f"kubernetes:{GATEWAY_API}:Gateway", name,
                         {"apiVersion": GATEWAY_API, "kind": "Gateway", "status": None}, opts)


class RayServiceResource(pulumi.CustomResource):
    """A `ray.io/v1` RayService through pulumi-kubernetes, with its `status` as an output (the generic
    CustomResource exposes no status)."""

    status: pulumi.Output[dict]

    def __init__(self, name: str, metadata, spec, opts: Optional[pulumi.ResourceOptions] = None):
        from importlib.metadata import version  # the provider plugin is pulumi-kubernetes' own version

        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=version("pulumi-kubernetes")))
        super().__init__(f"kubernetes:{API_VERSION}:RayService", name,
                         {"apiVersion": API_VERSION, "kind": "RayService", "metadata": metadata, "spec": spec,
                          "status": None}, opts)


@dataclass(frozen=True)
class RayServiceArgs:
    settings: RayServiceSettings = arg("RayService name, namespace, groups, Serve Service, upgrades, readiness timeout")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    image: pulumi.Input[str] = arg("the Serve image, pinned by digest or version tag")
    placements: Optional[dict] = arg("HEAD / worker group name -> Placement (node selector, tolerations)", None)
    storage: Optional[CheckpointStorage] = arg("GCS fault-tolerance Redis and model cache", None)
    serve_env: dict = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)", default_factory=dict)
    service_annotations: Optional[pulumi.Input[dict]] = arg("annotations of a LoadBalancer Serve Service (cloud "
                                                            "specific; values may be Outputs)", None)
    tls: bool = arg("the load balancer terminates TLS on 443 (its annotations carry the certificate)", False)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("the Serve load balancer's source ranges (e.g. another "
                                                               "stack's output); default settings.allowed_cidrs", None)
    operator_namespace: Optional[str] = arg("the KubeRay operator's namespace: NetworkPolicies admit it to the "
                                            "dashboard and keep everything else but Serve's port in; None: no policies", None)
    metrics_namespace: Optional[str] = arg("a monitoring namespace whose Prometheus may scrape Ray's metrics ports", None)
    egress: Optional[network.Egress] = arg("what leaves the namespace (the API server's addresses, HTTPS); None: "
                                           "egress not restricted", None)
    head_env: Optional[dict] = arg("extra environment of the head (e.g. where Prometheus and Grafana are)", None)
    gated: bool = arg("a rollout gate (kuberay.rollout_gate) watches its upgrades: `up` waits for its verdict", False)


class RayService(pulumi.ComponentResource):
    """Outputs `app_urls` (route prefix included), `app_status` (KubeRay's, once Ready), `port_forward`
    (reach Serve from this machine) and `dashboard_hint`."""

    def __init__(self, name: str, args: RayServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:RayService", name, None, opts)
        s = args.settings
        ref = args.storage.ref if args.storage else None
        cidrs = None if args.allowed_cidrs is None else \
            checked(args.allowed_cidrs, list[AllowListCidr], "allowed_cidrs")
        parts = [args.image, args.service_annotations, cidrs,
                 *((ref.redis_address, ref.password_secret, ref.model_cache_claim) if ref else ())]

        def render(values: list) -> dict:
            image, annotations, allowed, *storage = values
            plain = GcsStorageRef(storage[0], storage[1], ref.password_key, storage[2]) if ref else None
            return render_rayservice(s, args.serve_config, image, args.placements, plain, args.serve_env,
                                     annotations, args.head_env, args.tls, allowed, args.gated)

        manifest = pulumi.Output.all(*parts).apply(render)
        self.resource = RayServiceResource(f"{name}-rayservice", manifest["metadata"], manifest["spec"],
                                           pulumi.ResourceOptions(parent=self))
        pdb = render_head_pdb(s)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-head-pdb", metadata=pdb["metadata"], spec=pdb["spec"],
                                          opts=pulumi.ResourceOptions(parent=self))
        port, svc = serve_port(args.serve_config), serve_service_name(s)
        if args.operator_namespace:
            network.declare(name, network.render_network_policies(
                s.name, s.namespace, args.operator_namespace, port,
                redis_labels=args.storage.redis_labels if args.storage else None,
                metrics=(args.metrics_namespace, sorted(METRICS_PORTS.values())) if args.metrics_namespace else None,
                egress=args.egress),
                pulumi.ResourceOptions(parent=self))
        if s.incremental_upgrade is not None:  # KubeRay's Gateway, read once the RayService is Ready
            gateway = GatewayRead(f"{name}-gateway", f"{s.namespace}/{gateway_name(s)}",
                                  pulumi.ResourceOptions(parent=self, depends_on=[self.resource]))
            base = gateway.status.apply(gateway_base)
        elif s.service_type == "LoadBalancer":
            # KubeRay's Service, read once the RayService is Ready (Pulumi does not own it)
            live = k8s.core.v1.Service.get(f"{name}-serve-svc", f"{s.namespace}/{svc}",
                                           pulumi.ResourceOptions(parent=self, depends_on=[self.resource]))
            host = live.status.apply(lambda st: ((st.load_balancer.ingress or [None])[0] if st and st.load_balancer else None))
            scheme, suffix = ("https", "") if args.tls else ("http", f":{port}")
            base = host.apply(lambda ing: f"{scheme}://{(ing.hostname or ing.ip) if ing else 'pending'}{suffix}")
        else:
            base = pulumi.Output.from_input(f"http://{svc}.{s.namespace}.svc.cluster.local:{port}")
        self.app_urls = base.apply(lambda b: app_urls(b, args.serve_config))
        self.app_status = self.resource.status.apply(application_statuses)
        forwarded = f"{s.name}-head-svc" if s.incremental_upgrade is not None else svc  # the serving cluster's head
        self.port_forward = pulumi.Output.from_input(
            f"kubectl -n {s.namespace} port-forward svc/{forwarded} {port}:{port}  # then "
            + ", ".join(app_urls(f"http://127.0.0.1:{port}", args.serve_config).values()))
        self.dashboard_hint = pulumi.Output.from_input(
            f"kubectl -n {s.namespace} port-forward svc/{s.name}-head-svc {DASHBOARD_PORT}:{DASHBOARD_PORT}"
            f"  # then http://127.0.0.1:{DASHBOARD_PORT}")
        self.register_outputs({"app_urls": self.app_urls, "app_status": self.app_status,
                               "port_forward": self.port_forward, "dashboard_hint": self.dashboard_hint})
