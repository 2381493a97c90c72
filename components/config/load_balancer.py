"""The Serve endpoint's load balancer, as a stack describes it (the `eks` Serve Service's NLB, the `vm` NLB, a
LoadBalancer Service on any cluster): internal unless asked for internet-facing, then `allowed_cidrs` only."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from rayserve_pulumi.config.types import AcmCertificateArn, AllowListCidr, Strict


class LoadBalancerSettings(Strict):
    """The Serve endpoint's load balancer (EKS: the Serve Service's NLB; VM: the NLB in front of the nodes):
    internal unless a stack asks for internet-facing, which then admits only `allowed_cidrs`."""

    load_balancer_scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="reachable inside the VPC, or from allowed_cidrs on the internet")
    allowed_cidrs: list[AllowListCidr] = Field(default_factory=list, description="internet-facing only: the source "
                                               "ranges the load balancer admits; required")
    tls_certificate_arn: Optional[AcmCertificateArn] = Field(
        None, description="an ACM certificate: the load balancer terminates TLS on port 443")

    def allow_list_errors(self) -> Optional[str]:
        if self.load_balancer_scheme == "internet-facing" and not self.allowed_cidrs:
            return ("load_balancer_scheme internet-facing needs allowed_cidrs (the source ranges it admits); "
                    "an open endpoint is never the default")
        if self.allowed_cidrs and self.load_balancer_scheme != "internet-facing":
            return "allowed_cidrs applies to an internet-facing load balancer; set load_balancer_scheme"
        return None
