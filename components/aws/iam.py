"""IAM policy documents shared by the EKS and VM platforms."""
from __future__ import annotations

import json

import pulumi

__all__ = ["assume_role_policy", "irsa_trust_policy"]


def assume_role_policy(service: str) -> str:
    """Trust policy letting an AWS service (e.g. ec2.amazonaws.com) assume the role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]})


def irsa_trust_policy(oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str], namespace: str, sa: str) -> pulumi.Output[str]:
    """Trust policy letting one Kubernetes service account assume the role (IRSA)."""
    return pulumi.Output.all(oidc_arn, oidc_url).apply(lambda a: json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": a[0]},
            "Condition": {"StringEquals": {
                f"{a[1].removeprefix('https://')}:sub": f"system:serviceaccount:{namespace}:{sa}",
                f"{a[1].removeprefix('https://')}:aud": "sts.amazonaws.com",
            }},
        }],
    }))
