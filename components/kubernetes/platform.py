"""KubernetesPlatform: the `kubernetes` stack's one component: KubeRayServe on a cluster that already exists.

The cluster comes from a kubeconfig (the stack's path and context) or, for component users, a
`pulumi_kubernetes.Provider` of their own. The image is prebuilt and pinned (`image.uri`). Nothing AWS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pydantic import AfterValidator

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.types import PinnedImage
from rayserve_pulumi.config.stack import KubeRaySettings, MetricsSettings, RayServiceSettings, ServeSettings, StackConfig
from rayserve_pulumi.kuberay.serving import KubeRayServe, KubeRayServeArgs
from rayserve_pulumi.kubernetes.settings import KubernetesSettings
from rayserve_pulumi.inputs import checked
from rayserve_pulumi.rollout.settings import RolloutSettings
from rayserve_pulumi.platform import Platform, with_inputs

__all__ = ["KubernetesPlatformArgs", "KubernetesPlatform"]


def _kubeconfig(text: str) -> str:
    """A kubeconfig's contents: YAML (JSON included) naming at least one cluster."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise ValueError("a kubeconfig names its clusters (a `clusters:` list)")
    return text


Kubeconfig = Annotated[str, AfterValidator(_kubeconfig)]


@dataclass(frozen=True)
class KubernetesPlatformArgs:
    ray_service: RayServiceSettings = arg("the RayService: groups, autoscaling, upgrades, checkpoint storage")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    image: pulumi.Input[str] = arg("the Serve image, prebuilt and pinned (a tag or a digest; may come from another "
                                   "stack, checked once known)")
    settings: KubernetesSettings = arg("StorageClasses, the operator, the Serve Service's annotations",
                                       default_factory=KubernetesSettings)
    provider: Optional[k8s.Provider] = arg("the cluster's provider; default: one from kubeconfig, else from "
                                           "settings.kubeconfig and settings.context", None)
    kubeconfig: Optional[pulumi.Input[str]] = arg("a kubeconfig's contents (e.g. the cluster stack's secret output), "
                                                  "checked once known", None)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("who may reach an internet-facing Serve load balancer "
                                                               "(e.g. another stack's output); overrides ray_service's",
                                                               None)
    kuberay: KubeRaySettings = arg("the operator's Helm chart and namespace", default_factory=KubeRaySettings)
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=lambda: ServeSettings().runtime_env())
    metrics: MetricsSettings = arg("kube-prometheus-stack, PodMonitors, alert rules, Ray's dashboards",
                                   default_factory=MetricsSettings)
    rollout: RolloutSettings = arg("the gate of an incremental upgrade's traffic steps (thresholds; off switch)",
                                   default_factory=RolloutSettings)
    program_dir: Optional[str] = arg("anchors a relative settings.kubeconfig (default: the working directory)", None)


class KubernetesPlatform(Platform):
    """Outputs `app_urls`, `dashboard` (a port-forward command), `app_status` (each application's status as
    KubeRay reports it), `serve_port_forward`, and with metrics on `grafana` and `prometheus`."""

    TYPE = "rayserve:kubernetes:KubernetesPlatform"
    NAME = "kubernetes"

    def __init__(self, name: str, args: KubernetesPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, opts)
        s = args.settings
        provider = args.provider
        if provider is None and args.kubeconfig is not None:
            provider = k8s.Provider(f"{name}-k8s", kubeconfig=pulumi.Output.secret(
                checked(args.kubeconfig, Kubeconfig, "kubeconfig")), context=s.context,
                opts=pulumi.ResourceOptions(parent=self))
        elif provider is None:
            kubeconfig = str(Path(args.program_dir or Path.cwd()) / s.kubeconfig) if s.kubeconfig else None
            provider = k8s.Provider(f"{name}-k8s", kubeconfig=kubeconfig, context=s.context,
                                    opts=pulumi.ResourceOptions(parent=self))
        self.serving = KubeRayServe(name, KubeRayServeArgs(
            ray_service=args.ray_service, serve_config=args.serve_config,
            image=checked(args.image, PinnedImage, "image"), allowed_cidrs=args.allowed_cidrs,
            api_server_cidrs=list(s.api_server_cidrs) or None,
            storage_class=s.storage_class, model_cache_storage_class=s.model_cache_storage_class,
            kuberay=args.kuberay, install_operator=s.install_operator, service_annotations=s.service_annotations,
            serve_env=args.serve_env, metrics=args.metrics, rollout=args.rollout),
            pulumi.ResourceOptions(parent=self, provider=provider))
        self.app_urls = self.serving.app_urls
        self.dashboard = self.serving.dashboard_hint
        self.finish()

    def extra_outputs(self) -> dict:
        return {"app_status": self.serving.app_status, "serve_port_forward": self.serving.port_forward,
                **self.serving.monitoring_outputs()}

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir=None,
                   inputs: Optional[dict] = None) -> "KubernetesPlatform":
        return cls(cfg.name, with_inputs(KubernetesPlatformArgs(
            ray_service=cfg.ray_service, serve_config=serve_config, image=cfg.image.uri, settings=cfg.kubernetes,
            kuberay=cfg.kuberay, serve_env=cfg.serve.runtime_env(), metrics=cfg.metrics, rollout=cfg.rollout,
            program_dir=str(program_dir) if program_dir else None), inputs), opts)
