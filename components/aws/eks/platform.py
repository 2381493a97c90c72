"""EksPlatform: the `eks` stack's one component: an EKS cluster and the Serve image, plus KubeRayServe
(operator, namespace, storage, monitoring and RayService: what the `kubernetes` platform declares alone).

It turns EKS facts into the plain values the cloud-neutral KubeRay pieces take: node-group placement
(the node-group label, the GPU taint's toleration) and the NLB annotations of a LoadBalancer Service.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.serve import app_code
from rayserve_pulumi.aws.eks.cluster import EksCluster, EksClusterArgs
from rayserve_pulumi.aws.image import ServeImage, ServeImageArgs
from rayserve_pulumi.aws.network import ExistingNetwork
from rayserve_pulumi.aws.types import AcmCertificateArn
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.stack import (
    EksSettings, ImageSettings, KubeRaySettings, MetricsSettings, RayServiceSettings, ServeSettings, StackConfig,
    check_node_groups,
)
from rayserve_pulumi.constants import NODE_GROUP_LABEL, TLS_POLICY, TLS_PORT
from rayserve_pulumi.kuberay import GPU_TOLERATION, HEAD, Placement
from rayserve_pulumi.kuberay.serving import KubeRayServe, KubeRayServeArgs
from rayserve_pulumi.inputs import checked_or_none
from rayserve_pulumi.rollout.settings import RolloutSettings
from rayserve_pulumi.platform import Platform, with_inputs

__all__ = ["nlb_annotations", "placements", "EksPlatformArgs", "EksPlatform"]



def nlb_annotations(scheme: str, certificate_arn: Optional[pulumi.Input[str]] = None) -> dict:
    """An NLB for the Serve Service built by the AWS Load Balancer Controller (`external`: the legacy in-tree
    controller leaves it alone) with IP targets (straight to the Serve pods, no NodePort opened on every node)
    and a security group of its own: internal unless the stack asks for internet-facing; with an ACM
    certificate it terminates TLS on 443."""
    annotations = {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
                   "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                   "service.beta.kubernetes.io/aws-load-balancer-scheme": scheme}
    if certificate_arn is not None:
        annotations.update({"service.beta.kubernetes.io/aws-load-balancer-ssl-cert": certificate_arn,
                            "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": str(TLS_PORT),
                            "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": TLS_POLICY})
    return annotations


def placements(rs: RayServiceSettings, eks: EksSettings) -> dict[str, Placement]:
    """HEAD / worker group name -> where its pods run on this cluster's node groups."""
    def place(node_group: Optional[str]) -> Placement:
        return Placement(node_selector={NODE_GROUP_LABEL: node_group} if node_group else None,
                         tolerations=[GPU_TOLERATION] if eks.is_gpu_group(node_group) else None)

    return {HEAD: place(rs.head.node_group), **{g.name: place(g.node_group) for g in rs.worker_groups}}


@dataclass(frozen=True)
class EksPlatformArgs:
    eks: EksSettings = arg("the cluster: VPC, Kubernetes version, node groups")
    ray_service: RayServiceSettings = arg("the RayService: groups, autoscaling, upgrades, checkpoint storage")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    image: ImageSettings = arg("a prebuilt pinned image, or build: true")
    kuberay: KubeRaySettings = arg("the operator's Helm chart", default_factory=KubeRaySettings)
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=lambda: ServeSettings().runtime_env())
    metrics: MetricsSettings = arg("kube-prometheus-stack, PodMonitors, alert rules, Ray's dashboards",
                                   default_factory=MetricsSettings)
    rollout: RolloutSettings = arg("the gate of an incremental upgrade's traffic steps (thresholds; off switch)",
                                   default_factory=RolloutSettings)
    tags: dict[str, str] = arg("AWS tags", default_factory=dict)
    code: AppCode = arg("the apps' code the image carries (AppCode.locate(app_dir, requirements, program_dir)); "
                        "default the bundled apps", default_factory=AppCode.bundled_apps)
    # values that may come from another resource or stack (a StackReference), each checked once known
    network: Optional[ExistingNetwork] = arg("a VPC that exists already; default: a new VPC from eks", None)
    image_uri: Optional[pulumi.Input[str]] = arg("a prebuilt image, pinned; overrides image", None)
    serve_tls_certificate_arn: Optional[pulumi.Input[str]] = arg("an ACM certificate for the Serve NLB's TLS "
                                                                 "listener; overrides eks'", None)
    allowed_cidrs: Optional[pulumi.Input[Sequence[str]]] = arg("who may reach an internet-facing Serve NLB; "
                                                               "overrides ray_service's", None)


class EksPlatform(Platform):
    """Outputs `app_urls`, `dashboard` (a port-forward command), `image`, `kubeconfig` (secret), `cluster_name`,
    `app_status` (each application's status as KubeRay reports it) and `serve_port_forward`."""

    TYPE = "rayserve:aws:EksPlatform"
    NAME = "eks"

    def __init__(self, name: str, args: EksPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        try:
            check_node_groups(args.ray_service, args.eks)  # the CRD cannot check placement; before any child exists
        except ValueError as exc:
            raise ConfigError(f"rayserve:{exc}") from None
        super().__init__(name, opts)
        rs = args.ray_service
        child = pulumi.ResourceOptions(parent=self)
        needs_gpu = rs.head.gpu > 0 or any(g.gpu for g in rs.worker_groups)
        self.image = ServeImage(f"{name}-image", ServeImageArgs(settings=args.image, gpu=needs_gpu, tags=args.tags,
                                                                code=args.code, uri=args.image_uri), child)
        self.cluster = EksCluster(f"{name}-eks", EksClusterArgs(
            settings=args.eks, network=args.network, enable_efs=rs.checkpoint.model_cache_gi is not None,
            load_balancer_controller=rs.service_type == "LoadBalancer", tags=args.tags), child)
        certificate = checked_or_none(args.serve_tls_certificate_arn, AcmCertificateArn, "serve_tls_certificate_arn") \
            or args.eks.serve_tls_certificate_arn
        self.serving = KubeRayServe(name, KubeRayServeArgs(
            ray_service=rs, serve_config=args.serve_config, image=self.image.image_ref,
            storage_class=self.cluster.storage_class_name, model_cache_storage_class=self.cluster.model_cache_storage_class,
            kuberay=args.kuberay, placements=placements(rs, args.eks),
            service_annotations=nlb_annotations(rs.load_balancer_scheme, certificate),
            tls=certificate is not None, allowed_cidrs=args.allowed_cidrs,
            api_server_cidrs=[self.cluster.network.cidr_block],  # the private endpoint's ENIs are in the VPC
            serve_env=args.serve_env, metrics=args.metrics, rollout=args.rollout, previous_parent=self),
            pulumi.ResourceOptions(parent=self, provider=self.cluster.provider, depends_on=[
                c for c in (self.cluster.load_balancer_controller, self.cluster.device_plugin) if c is not None]))
        self.app_urls = self.serving.app_urls
        self.dashboard = self.serving.dashboard_hint
        self.finish()

    def extra_outputs(self) -> dict:
        return {"image": self.image.image_ref, "kubeconfig": self.cluster.kubeconfig,
                "cluster_name": self.cluster.cluster_name, "app_status": self.serving.app_status,
                "serve_port_forward": self.serving.port_forward, **self.serving.monitoring_outputs()}

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir=None,
                   inputs: Optional[dict] = None) -> "EksPlatform":
        return cls(cfg.name, with_inputs(EksPlatformArgs(eks=cfg.eks, ray_service=cfg.ray_service, serve_config=serve_config,
                                             image=cfg.image, kuberay=cfg.kuberay, serve_env=cfg.serve.runtime_env(),
                                             metrics=cfg.metrics, rollout=cfg.rollout, tags=cfg.tags,
                                             code=app_code(cfg.serve, program_dir)), inputs), opts)
