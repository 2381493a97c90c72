"""Who may reach the Serve endpoint's load balancer, on any cloud (the RayService's Serve Service, the VM
platform's NLB). A TLS certificate is the platform's own (`vm.tls_certificate_arn`,
`eks.serve_tls_certificate_arn`)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from rayserve_pulumi.config.types import AllowListCidr, Strict

__all__ = ["LoadBalancerScope"]


class LoadBalancerScope(Strict):
    """Who may reach the Serve endpoint's load balancer, on any cloud: internal unless a stack asks for
    internet-facing, which then admits only `allowed_cidrs` (a Service's loadBalancerSourceRanges)."""

    load_balancer_scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="reachable inside the network, or from allowed_cidrs on the internet")
    allowed_cidrs: list[AllowListCidr] = Field(default_factory=list, description="internet-facing only: the source "
                                               "ranges the load balancer admits; required")

    def allow_list_errors(self) -> Optional[str]:
        """The model's own rule: source ranges belong to an internet-facing load balancer."""
        if self.allowed_cidrs and self.load_balancer_scheme != "internet-facing":
            return "allowed_cidrs applies to an internet-facing load balancer; set load_balancer_scheme"
        return None

    def open_endpoint_error(self, section: str, cidrs_elsewhere: bool = False) -> Optional[str]:
        """An internet-facing load balancer needs source ranges: the section's own, or (component users) ones
        that come from another stack (`cidrs_elsewhere`). Checked by the platform, which knows both."""
        if self.load_balancer_scheme == "internet-facing" and not self.allowed_cidrs and not cidrs_elsewhere:
            return (f"{section}.load_balancer_scheme internet-facing needs {section}.allowed_cidrs (the source ranges "
                    "it admits); an open endpoint is never the default")
        return None
