"""What AWS receives from a stack, checked where it enters (config.aws has the rules): VPC ranges, ACM
certificates, EC2 instance types, resource tags."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from rayserve_pulumi.config import aws
from rayserve_pulumi.config.instances import instance_type

__all__ = ["VpcCidr", "AcmCertificateArn", "InstanceType", "AwsTags"]


def _known_instance_type(name: str) -> str:
    instance_type(name)
    return name


VpcCidr = Annotated[str, AfterValidator(aws.vpc_cidr)]
AcmCertificateArn = Annotated[str, AfterValidator(aws.acm_certificate_arn)]
InstanceType = Annotated[str, AfterValidator(_known_instance_type)]


def _tags(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 40:
        raise ValueError(f"{len(v)} tags; AWS allows 50 per resource and the stack adds its own (at most 40)")
    for key, value in v.items():
        aws.tag(key, value)
    return v


AwsTags = Annotated[dict[str, str], AfterValidator(_tags)]
