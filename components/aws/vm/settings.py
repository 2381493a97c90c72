"""The `vm` platform's settings (`rayserve:vm`): the EC2 head and workers, their volumes and the NLB."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.aws.types import AcmCertificateArn, InstanceType, VpcCidr
from rayserve_pulumi.config import aws
from rayserve_pulumi.config.load_balancer import LoadBalancerScope

__all__ = ["LoadBalancerSettings", "VmSettings"]


class LoadBalancerSettings(LoadBalancerScope):
    """An AWS load balancer in front of Serve (the VM platform's NLB): the scope, and TLS on 443 with an ACM
    certificate."""

    tls_certificate_arn: Optional[AcmCertificateArn] = Field(
        None, description="an ACM certificate: the load balancer terminates TLS on port 443")


class VmSettings(LoadBalancerSettings):
    """The EC2 VM platform."""

    vpc_cidr: VpcCidr = Field("10.20.0.0/16", description="VPC IPv4 CIDR")
    head_instance_type: InstanceType = Field("m6i.xlarge", description="head instance type")
    worker_instance_type: InstanceType = Field("m6i.xlarge", description="worker instance type")
    worker_min: int = Field(1, ge=0, description="fewest workers")
    worker_desired: int = Field(1, ge=0, description="workers at creation, and in a new cluster's worker group (a new "
                                "image), which `up` waits for healthy behind the balancer before the old one goes")
    worker_max: int = Field(3, ge=0, description="most workers")
    ami_id: Optional[str] = Field(None, description="AMI (default: the ECS-optimised Amazon Linux 2023, with Docker)")
    root_volume_gb: int = Field(100, ge=30, description="root volume size")
    checkpoint_volume_gb: int = Field(50, ge=1, description="the head's EBS checkpoint volume (GCS Redis, model cache)")
    s3_bucket_arn: Optional[str] = Field(None, description="a bucket the nodes may read and write")
    config_poll_seconds: int = Field(30, ge=5, description="how often the head applies the Serve config from SSM")
    head_ready_timeout_s: int = Field(1800, ge=60, le=86400, description="how long `up` waits for a new head (its "
                                      "image pull, Ray, every application RUNNING), and then for the balancer to "
                                      "put it in service, each before it fails, the old head still serving")
    ssm_session_access: bool = Field(True, description="Session Manager (port-forwarding to the dashboard): the "
                                     "Session Manager channel actions only, never account-wide parameter reads")

    @field_validator("ami_id")
    @classmethod
    def _ami(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else aws.ami_id(v)

    @field_validator("s3_bucket_arn")
    @classmethod
    def _bucket(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else aws.s3_bucket_arn(v)

    @model_validator(mode="after")
    def _sizes(self):
        if not self.worker_min <= self.worker_desired <= self.worker_max:
            raise ValueError("need worker_min <= worker_desired <= worker_max")
        if (error := self.allow_list_errors()):
            raise ValueError(error)
        return self
