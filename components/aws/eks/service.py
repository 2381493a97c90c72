"""EksService: the eks platform as the component provider serves it to every Pulumi language
(`rayserve:index:EksService`; the provider host puts every component in Pulumi's `index` module)."""
from typing import Any, Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from rayserve_pulumi.provider.component import ProviderComponent, existing_network

__all__ = ["EksServiceArgs", "EksService"]


class EksServiceArgs(TypedDict):
    config: dict[str, Any]
    """The stack's settings as a stack file's `rayserve:` keys hold them (`eks`, `ray_service`, `serve`, `image`,
    `kuberay`, `metrics`, `tags`, `name`), validated like `rayserve validate` before anything is declared."""
    image_uri: NotRequired[pulumi.Input[str]]
    """A prebuilt Serve image, pinned by digest or version tag; overrides config.image."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """A VPC that exists already (no VPC is created); with private_subnet_ids."""
    private_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """The existing VPC's subnets for nodes, one per availability zone."""
    public_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """The existing VPC's public subnets, for an internet-facing load balancer."""
    serve_tls_certificate_arn: NotRequired[pulumi.Input[str]]
    """An ACM certificate: the Serve NLB terminates TLS on 443; overrides config.eks'."""
    allowed_cidrs: NotRequired[pulumi.Input[list[str]]]
    """Who may reach an internet-facing Serve NLB; overrides config.ray_service's."""


class EksService(ProviderComponent):
    """Ray Serve on a new EKS cluster with KubeRay: VPC, cluster and node groups, the Serve image, the operator,
    the RayService, checkpoint storage and monitoring."""

    app_urls: pulumi.Output[dict[str, str]]
    """Each application's URL, with its route prefix."""
    dashboard: pulumi.Output[str]
    """The Ray dashboard's URL, or the command that makes it reachable."""
    PLATFORM = "eks"

    def __init__(self, name: str, args: EksServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:index:EksService", name, args["config"], dict(
            image_uri=args.get("image_uri"), network=existing_network(args), allowed_cidrs=args.get("allowed_cidrs"),
            serve_tls_certificate_arn=args.get("serve_tls_certificate_arn")), opts)
