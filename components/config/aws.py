"""AWS' own rules for what a stack names: IPv4 CIDRs, S3 bucket ARNs, AMI ids, tags, SSM sizes."""
from __future__ import annotations

import ipaddress
import re

__all__ = [
    "S3_BUCKET_ARN", "ACM_CERTIFICATE_ARN", "AMI_ID", "TAG_CHARS", "SSM_ADVANCED_LIMIT", "SSM_STANDARD_LIMIT",
    "ipv4_cidr", "allow_list_cidr", "acm_certificate_arn", "vpc_cidr", "s3_bucket_arn", "resource_id", "ami_id", "tag",
]

S3_BUCKET_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):s3:::(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$")
ACM_CERTIFICATE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):acm:[a-z]{2}(-gov)?-[a-z]+-[0-9]:[0-9]{12}:"
                                 r"certificate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
TAG_CHARS = re.compile(r"^[\w .:/=+\-@]*$", re.UNICODE)
SSM_ADVANCED_LIMIT = 8192  # bytes of an Advanced-tier String parameter
SSM_STANDARD_LIMIT = 4096


def ipv4_cidr(value: str) -> str:
    """An IPv4 CIDR in canonical form (the rules it feeds are IPv4 rules: cidr_ipv4, VPC cidr_block)."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a CIDR block (e.g. 203.0.113.0/24)") from None
    if net.version != 4:
        raise ValueError(f"{value!r} is an IPv6 block; these rules take IPv4 CIDRs (e.g. 203.0.113.0/24)")
    if str(net) != value:
        raise ValueError(f"{value!r} has host bits set or is not canonical; did you mean {str(net)!r}?")
    return value


def allow_list_cidr(value: str) -> str:
    """A source range that admits someone in particular: an IPv4 CIDR narrower than the whole internet."""
    ipv4_cidr(value)
    if ipaddress.ip_network(value).prefixlen == 0:
        raise ValueError(f"{value!r} is the whole internet; list the ranges that should get in (e.g. 203.0.113.0/24)")
    return value


def acm_certificate_arn(value: str) -> str:
    """An ACM certificate's ARN (TLS on a load balancer's listener)."""
    if not isinstance(value, str) or not ACM_CERTIFICATE_ARN.match(value):
        raise ValueError(f"{value!r} is not an ACM certificate ARN: arn:aws:acm:<region>:<12-digit account>:"
                         "certificate/<id>")
    return value


def vpc_cidr(value: str) -> str:
    """A VPC's IPv4 block: /16 to /28 (AWS' limits)."""
    ipv4_cidr(value)
    prefix = ipaddress.ip_network(value).prefixlen
    if not 16 <= prefix <= 28:
        raise ValueError(f"{value!r}: a VPC CIDR must be between /16 and /28")
    return value


def s3_bucket_arn(value: str) -> str:
    """One bucket's ARN (never a wildcard, never an object path)."""
    match = S3_BUCKET_ARN.match(value) if isinstance(value, str) else None
    if not match or ".." in match["bucket"] or re.fullmatch(r"[0-9.]+", match["bucket"]):
        raise ValueError(f"{value!r} is not an S3 bucket ARN: arn:aws:s3:::<bucket name> (3-63 lower-case letters, "
                         "digits, '.', '-'; no wildcards)")
    return value


def resource_id(prefix: str):
    """A rule for an EC2 id of the form `<prefix>-` and 8 or 17 lower-case hex digits (vpc, subnet, sg, ...)."""
    pattern = re.compile(rf"{prefix}-([0-9a-f]{{8}}|[0-9a-f]{{17}})")

    def check(value: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a {prefix} id: '{prefix}-' and 8 or 17 lower-case hex digits")
        return value
    return check


def ami_id(value: str) -> str:
    if not isinstance(value, str) or not AMI_ID.match(value):
        raise ValueError(f"{value!r} is not an AMI id: 'ami-' and 8 or 17 lower-case hex digits")
    return value


def tag(key: str, value: str) -> None:
    """AWS tag rules: key 1-128 characters, value at most 256, no 'aws:' prefix, the allowed characters."""
    if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or not TAG_CHARS.match(key):
        raise ValueError(f"tag key {key!r}: 1-128 letters, digits, spaces or _ . : / = + - @, not starting with 'aws:'")
    if len(value) > 256 or not TAG_CHARS.match(value):
        raise ValueError(f"tag {key!r}: value must be at most 256 letters, digits, spaces or _ . : / = + - @")
