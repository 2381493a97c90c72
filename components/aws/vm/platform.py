"""VmPlatform: the `vm` stack's one component: the Serve image and the EC2 Ray cluster."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.serve import app_code
from rayserve_pulumi.aws.image import ServeImage, ServeImageArgs
from rayserve_pulumi.aws.network import ExistingNetwork
from rayserve_pulumi.aws.vm.cluster import RayVmCluster, RayVmClusterArgs, check_serve_port
from rayserve_pulumi.config.stack import ImageSettings, MetricsSettings, ServeSettings, StackConfig, VmSettings
from rayserve_pulumi.platform import Platform, with_inputs
from rayserve_pulumi.rollout.settings import RolloutSettings

__all__ = ["VmPlatformArgs", "VmPlatform"]


@dataclass(frozen=True)
class VmPlatformArgs:
    vm: VmSettings = arg("instance types, worker counts, allowed CIDRs, volumes")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    image: ImageSettings = arg("a prebuilt pinned image, or build: true")
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=lambda: ServeSettings().runtime_env())
    metrics: MetricsSettings = arg("Prometheus and Grafana on the head", default_factory=MetricsSettings)
    rollout: RolloutSettings = arg("gated rollouts of a Serve config whose applications' code changed",
                                   default_factory=RolloutSettings)
    tags: dict[str, str] = arg("AWS tags", default_factory=dict)
    code: AppCode = arg("the apps' code the image carries (AppCode.locate(app_dir, requirements, program_dir)); "
                        "default the bundled apps", default_factory=AppCode.bundled_apps)
    # values that may come from another resource or stack (a StackReference), each checked once known
    network: Optional[ExistingNetwork] = arg("a VPC that exists already; default: a new VPC from vm.vpc_cidr", None)
    image_uri: Optional[pulumi.Input[str]] = arg("a prebuilt image, pinned; overrides image", None)
    tls_certificate_arn: Optional[pulumi.Input[str]] = arg("an ACM certificate for the NLB; overrides vm's", None)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("who may reach an internet-facing NLB; overrides "
                                                               "vm's", None)


class VmPlatform(Platform):
    """Outputs `app_urls`, `dashboard` (an SSM port-forward command), `image`, `head_private_ip`, and with
    metrics on `grafana` and `prometheus` (SSM port-forward commands)."""

    TYPE = "rayserve:aws:VmPlatform"
    NAME = "vm"

    def __init__(self, name: str, args: VmPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_serve_port(args.serve_config)  # before any child exists
        super().__init__(name, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.image = ServeImage(f"{name}-image", ServeImageArgs(settings=args.image, tags=args.tags, code=args.code,
                                                                uri=args.image_uri), child)
        self.cluster = RayVmCluster(
            f"{name}-vm",
            RayVmClusterArgs(settings=args.vm, serve_config=args.serve_config, image=self.image.image_ref,
                             image_repository_arn=self.image.repository_arn, tags=args.tags, serve_env=args.serve_env,
                             metrics=args.metrics, rollout=args.rollout, network=args.network,
                             tls_certificate_arn=args.tls_certificate_arn,
                             allowed_cidrs=args.allowed_cidrs),
            child,
        )
        self.app_urls = self.cluster.app_urls
        self.dashboard = self.cluster.dashboard_hint
        self.finish()

    def extra_outputs(self) -> dict:
        monitoring = {"grafana": self.cluster.grafana_hint, "prometheus": self.cluster.prometheus_hint} \
            if self.cluster.grafana_hint else {}
        return {"image": self.image.image_ref, "head_private_ip": self.cluster.head_private_ip, **monitoring}

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir=None,
                   inputs: Optional[dict] = None) -> "VmPlatform":
        return cls(cfg.name, with_inputs(VmPlatformArgs(vm=cfg.vm, serve_config=serve_config, image=cfg.image,
                                            serve_env=cfg.serve.runtime_env(), metrics=cfg.metrics, rollout=cfg.rollout,
                                            tags=cfg.tags,
                                            code=app_code(cfg.serve, program_dir)), inputs), opts)
