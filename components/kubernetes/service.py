"""KubernetesService: the kubernetes platform as the component provider serves it to every Pulumi language
(`rayserve:index:KubernetesService`; the provider host puts every component in Pulumi's `index` module)."""
from typing import Any, Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from rayserve_pulumi.provider.component import ProviderComponent

__all__ = ["KubernetesServiceArgs", "KubernetesService"]


class KubernetesServiceArgs(TypedDict):
    config: dict[str, Any]
    """The stack's settings as a stack file's `rayserve:` keys hold them (`kubernetes`, `ray_service`, `serve`,
    `image`, `kuberay`, `metrics`, `name`), validated like `rayserve validate` before anything is declared."""
    image: NotRequired[pulumi.Input[str]]
    """The Serve image, prebuilt and pinned (a tag or a digest); overrides config.image.uri."""
    kubeconfig: NotRequired[pulumi.Input[str]]
    """The cluster's kubeconfig contents (e.g. the cluster stack's secret output); default config.kubernetes'."""
    allowed_cidrs: NotRequired[pulumi.Input[list[str]]]
    """Who may reach an internet-facing Serve load balancer; overrides config.ray_service's."""


class KubernetesService(ProviderComponent):
    """Ray Serve with KubeRay on a Kubernetes cluster that exists already: the operator, the RayService,
    checkpoint storage and monitoring."""

    app_urls: pulumi.Output[dict[str, str]]
    """Each application's URL, with its route prefix."""
    dashboard: pulumi.Output[str]
    """The Ray dashboard's URL, or the command that makes it reachable."""
    PLATFORM = "kubernetes"

    def __init__(self, name: str, args: KubernetesServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:index:KubernetesService", name, args["config"], dict(
            image=args.get("image"), kubeconfig=args.get("kubeconfig"), allowed_cidrs=args.get("allowed_cidrs")), opts)
