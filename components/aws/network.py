"""Where a cluster's AWS resources live: a VPC the component creates (pulumi-awsx), or one that exists already
(`ExistingNetwork`: ids that may come from a network stack's `StackReference`, checked once known)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx
from pydantic import AfterValidator, Field

from rayserve_pulumi.args import arg
from rayserve_pulumi.config import aws as rules
from rayserve_pulumi.inputs import checked

__all__ = ["VpcId", "SubnetId", "ExistingNetwork", "Network", "network"]

VpcId = Annotated[str, AfterValidator(rules.resource_id("vpc"))]
SubnetId = Annotated[str, AfterValidator(rules.resource_id("subnet"))]


@dataclass(frozen=True)
class ExistingNetwork:
    """A VPC that exists already: the cluster's resources go into its subnets, and no VPC is created."""

    vpc_id: pulumi.Input[str] = arg("the VPC's id (vpc-...)")
    private_subnet_ids: pulumi.Input[Sequence[str]] = arg("subnets for nodes (one per availability zone, each with a "
                                                          "route out through NAT)")
    public_subnet_ids: pulumi.Input[Sequence[str]] = arg("subnets for an internet-facing load balancer",
                                                         default_factory=list)


@dataclass(frozen=True)
class Network:
    """The network a component uses, as Outputs (whichever way it came)."""

    vpc_id: pulumi.Output[str]
    cidr_block: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list]
    public_subnet_ids: pulumi.Output[list]
    created: Optional[awsx.ec2.Vpc] = None


def network(name: str, existing: Optional[ExistingNetwork], min_private_subnets: int, create: dict,
            opts: pulumi.ResourceOptions) -> Network:
    """The existing network, each id checked once known (at least `min_private_subnets` private subnets), or a
    new awsx VPC from `create` (its arguments)."""
    if existing is None:
        vpc = awsx.ec2.Vpc(f"{name}-vpc", **create, opts=opts)
        return Network(vpc.vpc_id, pulumi.Output.from_input(create["cidr_block"]), vpc.private_subnet_ids,
                       vpc.public_subnet_ids, vpc)
    vpc_id = checked(existing.vpc_id, VpcId, "network.vpc_id")
    private = checked(existing.private_subnet_ids,
                      Annotated[Sequence[SubnetId], Field(min_length=min_private_subnets)],
                      "network.private_subnet_ids").apply(list)
    public = checked(existing.public_subnet_ids, Sequence[SubnetId], "network.public_subnet_ids").apply(list)
    cidr = aws.ec2.get_vpc_output(id=vpc_id, opts=pulumi.InvokeOutputOptions(parent=opts.parent)).cidr_block
    return Network(vpc_id, cidr, private, public)
