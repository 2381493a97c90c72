"""The policy pack: each policy's validation called directly on passing and failing resources,
and every resource our stacks declare (under mocks) passing every policy."""
from __future__ import annotations

import copy

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs

from rayserve_pulumi.policy import POLICIES
from tests.pulumi_harness import all_stacks, render, stack_values

BY_NAME = {p.name: p for p in POLICIES}
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps@sha256:" + "ab" * 32


def violations(policy: str, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:s::p::{resource_type}::r", "r",
                                  PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []), None)
    BY_NAME[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


def ray_service(image=IMAGE, limits=True, password=None) -> dict:
    resources = {"limits": {"cpu": "1", "memory": "2Gi"}} if limits else {"requests": {"cpu": "1"}}
    container = {"name": "ray-head", "image": image, "resources": resources, "env": [{"name": "HF_HOME", "value": "/m"}]}
    gcs = {"redisAddress": "r:6379", "redisPassword": password or {"valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}}}
    return {"spec": {"serveConfigV2": "", "rayClusterConfig": {
        "authOptions": {"mode": "token"},
        "headGroupSpec": {"template": {"spec": {"containers": [container]}}},
        "workerGroupSpecs": [{"groupName": "cpu", "template": {"spec": {"containers": [dict(copy.deepcopy(container), name="ray-worker")]}}}],
        "gcsFaultToleranceOptions": gcs}}}


RS = "kubernetes:ray.io/v1:RayService"
CASES = [
    # policy, type, passing props, failing props
    ("no-public-ray-ports", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
     {"cidrIpv4": "0.0.0.0/0", "fromPort": 8000, "toPort": 8000, "ipProtocol": "tcp"},
     {"cidrIpv4": "0.0.0.0/0", "fromPort": 8000, "toPort": 9000, "ipProtocol": "tcp"}),
    ("no-public-ray-ports", "aws:ec2/securityGroup:SecurityGroup",
     {"ingress": [{"cidrBlocks": ["10.0.0.0/16"], "fromPort": 0, "toPort": 0, "protocol": "-1"}]},
     {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 6379, "toPort": 6379, "protocol": "tcp"}]}),
    ("no-public-ray-ports", "kubernetes:core/v1:Service",
     {"spec": {"type": "LoadBalancer", "ports": [{"port": 8000}]}},
     {"spec": {"type": "LoadBalancer", "ports": [{"port": 8265}]}}),
    ("serve-endpoint-not-open", RS,
     {"spec": {"serveService": {"metadata": {"annotations": {
         "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}}, "spec": {"type": "LoadBalancer"}}}},
     # the old rendering: an internet-facing NLB with no source ranges
     {"spec": {"serveService": {"metadata": {"annotations": {
         "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}}, "spec": {"type": "LoadBalancer"}}}}),
    ("serve-endpoint-not-open", "kubernetes:core/v1:Service",
     {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}},
      "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"], "ports": [{"port": 8000}]}},
     {"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}},
      "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["0.0.0.0/0"], "ports": [{"port": 8000}]}}),
    ("imdsv2-required", "aws:ec2/instance:Instance",
     {"metadataOptions": {"httpTokens": "required"}}, {"metadataOptions": {"httpTokens": "optional"}}),
    ("imdsv2-required", "aws:ec2/launchTemplate:LaunchTemplate",
     {"metadataOptions": {"httpTokens": "required"}}, {}),
    ("encrypted-volumes", "aws:ec2/instance:Instance",
     {"rootBlockDevice": {"encrypted": True}}, {"rootBlockDevice": {"encrypted": False}}),
    ("encrypted-volumes", "aws:ebs/volume:Volume", {"encrypted": True}, {"size": 10}),
    ("encrypted-volumes", "aws:ec2/launchTemplate:LaunchTemplate",
     {"blockDeviceMappings": [{"ebs": {"encrypted": "true"}}]}, {"blockDeviceMappings": [{"ebs": {"encrypted": "false"}}]}),
    ("pinned-images", RS, ray_service(), ray_service(image="rayproject/ray:latest")),
    ("pinned-images", "kubernetes:apps/v1:StatefulSet",
     {"spec": {"template": {"spec": {"containers": [{"image": "redis:7.4.2-alpine"}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"image": "redis"}]}}}}),
    ("ray-pod-resource-limits", RS, ray_service(), ray_service(limits=False)),
    ("secrets-as-secrets", RS, ray_service(), ray_service(password={"value": "hunter2"})),
    ("secrets-as-secrets", "aws:ssm/parameter:Parameter",
     {"name": "/app/db-password", "type": "SecureString"}, {"name": "/app/db-password", "type": "String"}),
    ("secrets-as-secrets", "kubernetes:core/v1:ConfigMap", {"data": {"endpoint": "x"}}, {"data": {"redis_password": "x"}}),
    ("ray-token-auth", RS, ray_service(),
     {"spec": {"rayClusterConfig": {**ray_service()["spec"]["rayClusterConfig"], "authOptions": {"mode": "disabled"}}}}),
]


@pytest.mark.parametrize("policy,resource_type,good,bad", CASES, ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}" for c in CASES])
def test_policy_passes_good_and_flags_bad(policy, resource_type, good, bad):
    assert violations(policy, resource_type, good) == []
    assert violations(policy, resource_type, bad), f"{policy} missed {bad}"


def test_every_policy_is_exercised():
    assert {c[0] for c in CASES} == set(BY_NAME)


def test_literal_secret_env_on_a_ray_pod_is_flagged():
    props = copy.deepcopy(ray_service())
    head = props["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"].append({"name": "HF_TOKEN", "value": "hf_abc"})
    assert violations("secrets-as-secrets", RS, props) == [
        "headGroupSpec: env HF_TOKEN holds a literal secret; use valueFrom.secretKeyRef"]


@pytest.mark.parametrize("stack", [s for s in all_stacks() if s != "local"])
def test_every_declared_resource_of_each_stack_passes_every_policy(stack):
    found = [(r.type, r.name, msg) for r in render(stack_values(stack), stack).resources
             for name in BY_NAME for msg in violations(name, r.type, r.inputs)]
    assert found == []
