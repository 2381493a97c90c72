"""VmService: the vm platform as the component provider serves it to every Pulumi language
(`rayserve:index:VmService`; the provider host puts every component in Pulumi's `index` module)."""
from typing import Any, Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from rayserve_pulumi.provider.component import ProviderComponent, existing_network

__all__ = ["VmServiceArgs", "VmService"]


class VmServiceArgs(TypedDict):
    config: dict[str, Any]
    """The stack's settings as a stack file's `rayserve:` keys hold them (`vm`, `serve`, `image`, `metrics`,
    `tags`, `name`), validated like `rayserve validate` before anything is declared."""
    image_uri: NotRequired[pulumi.Input[str]]
    """A prebuilt Serve image, pinned by digest or version tag; overrides config.image."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """A VPC that exists already (no VPC is created); with private_subnet_ids."""
    private_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """The existing VPC's subnets for the head and the workers."""
    public_subnet_ids: NotRequired[pulumi.Input[list[str]]]
    """The existing VPC's public subnets, for an internet-facing load balancer."""
    tls_certificate_arn: NotRequired[pulumi.Input[str]]
    """An ACM certificate: the NLB terminates TLS on 443; overrides config.vm's."""
    allowed_cidrs: NotRequired[pulumi.Input[list[str]]]
    """Who may reach an internet-facing NLB; overrides config.vm's."""


class VmService(ProviderComponent):
    """Ray Serve on EC2: a head with an encrypted checkpoint volume, an autoscaling group of workers and an NLB."""

    app_urls: pulumi.Output[dict[str, str]]
    """Each application's URL, with its route prefix."""
    dashboard: pulumi.Output[str]
    """The Ray dashboard's URL, or the command that makes it reachable."""
    PLATFORM = "vm"

    def __init__(self, name: str, args: VmServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:index:VmService", name, args["config"], dict(
            image_uri=args.get("image_uri"), network=existing_network(args), allowed_cidrs=args.get("allowed_cidrs"),
            tls_certificate_arn=args.get("tls_certificate_arn")), opts)
