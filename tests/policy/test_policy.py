"""The policy pack: each policy's validation called directly on passing and failing resources,
and every resource our stacks declare (under mocks) passing every policy."""
from __future__ import annotations

import copy
import json

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs,
)

from rayserve_pulumi.policy import POLICIES
from rayserve_pulumi.policy.rules import CHECKS, STACK_CHECKS
from tests.pulumi_harness import all_stacks, render, stack_values

BY_NAME = {p.name: p for p in POLICIES}
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps@sha256:" + "ab" * 32


def violations(policy: str, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:s::p::{resource_type}::r", "r",
                                  PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []), None)
    BY_NAME[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


def _doc(actions, resources) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]})


def ray_service(image=IMAGE, limits=True, password=None, hardened=True) -> dict:
    resources = {"limits": {"cpu": "1", "memory": "2Gi"}} if limits else {"requests": {"cpu": "1"}}
    container = {"name": "ray-head", "image": image, "resources": resources, "env": [{"name": "HF_HOME", "value": "/m"}],
                 **({"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                         "runAsNonRoot": True}} if hardened else {})}
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
    ("monitoring-rbac-namespaced", "kubernetes:helm.sh/v3:Release",
     {"chart": "kube-prometheus-stack", "values": {"grafana": {"rbac": {"namespaced": True}, "sidecar": {
         "dashboards": {"searchNamespace": None}}}}},
     # the old rendering: the dashboard sidecar searched ALL namespaces (a ClusterRole reading every Secret)
     {"chart": "kube-prometheus-stack", "values": {"grafana": {"sidecar": {"dashboards": {"searchNamespace": "ALL"}}}}}),
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
    # Issue 10's exposures: each failing case is what the stacks rendered before, each passing one what they render now.
    ("no-account-wide-parameter-reads", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
     {"policyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"},
     {"policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}),
    ("no-account-wide-parameter-reads", "aws:iam/rolePolicy:RolePolicy",
     {"policy": _doc(["ssm:GetParameter"], ["arn:aws:ssm:us-east-1:123456789012:parameter/app/config"]),
      }, {"policy": _doc(["ssm:GetParameters"], "*")}),
    ("scoped-s3-access", "aws:iam/rolePolicy:RolePolicy",
     {"policy": _doc(["s3:GetObject"], ["arn:aws:s3:::models", "arn:aws:s3:::models/*"])},
     {"policy": _doc(["s3:GetObject", "s3:PutObject"], ["*", "*/*"])}),
    ("imds-hop-limit-1", "aws:ec2/instance:Instance",
     {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
     {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}),
    ("imds-hop-limit-1", "aws:ec2/launchTemplate:LaunchTemplate",
     {"metadataOptions": {"httpPutResponseHopLimit": 1}}, {"metadataOptions": {"httpTokens": "required"}}),
    ("eks-api-not-open", "eks:index:Cluster",
     {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"], "endpointPrivateAccess": True},
     {"endpointPublicAccess": True, "endpointPrivateAccess": True}),
    ("eks-api-not-open", "aws:eks/cluster:Cluster",
     {"vpcConfig": {"endpointPublicAccess": False}}, {"vpcConfig": {"publicAccessCidrs": ["0.0.0.0/0"]}}),
    ("no-open-ingress", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
     {"cidrIpv4": "203.0.113.0/24", "fromPort": 443, "toPort": 443, "ipProtocol": "tcp"},
     {"cidrIpv4": "0.0.0.0/0", "fromPort": 8000, "toPort": 8000, "ipProtocol": "tcp"}),
    ("no-public-instances", "aws:ec2/eip:Eip", {"domain": "vpc"}, {"domain": "vpc", "instance": "i-0123"}),
    ("ray-pods-unprivileged", RS, ray_service(), ray_service(hardened=False)),
    ("ray-pods-unprivileged", "kubernetes:apps/v1:StatefulSet",
     {"spec": {"template": {"spec": {"securityContext": {"runAsNonRoot": True}, "containers": [
         {"name": "redis", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}}},
     {"spec": {"template": {"spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 999},
                                     "containers": [{"name": "redis"}]}}}}),
    ("no-secrets-on-command-lines", "kubernetes:apps/v1:StatefulSet",
     {"spec": {"template": {"spec": {"containers": [{"name": "redis", "args": ["/etc/redis/redis.conf"],
                                                     "readinessProbe": {"exec": {"command": ["sh", "-c", "redis-cli ping"]}}}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "redis", "args": ["--requirepass", "$(REDIS_PASSWORD)"],
      "readinessProbe": {"exec": {"command": ["sh", "-c", "redis-cli -a \"$REDIS_PASSWORD\" --no-auth-warning ping"]}}}]}}}}),
    ("no-secrets-on-command-lines", "aws:ec2/instance:Instance",
     {"userData": "#!/bin/bash\npython3 -m rayserve_pulumi.node_agent head --auth-token-ssm /x/ray-auth-token\n"},
     {"userData": "#!/bin/bash\nredis-server --port 6380 --requirepass hunter2\n"}),
    ("tls-on-internet-facing-endpoints", RS,
     {"spec": {"serveService": {"metadata": {"annotations": {
         "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
         "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": "arn:aws:acm:us-west-2:123456789012:certificate/x"}},
         "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"]}}}},
     {"spec": {"serveService": {"metadata": {"annotations": {
         "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}},
         "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"]}}}}),
]
CASES += [
    # Issue 13: Prometheus and Grafana are never public.
    ("monitoring-not-public", "kubernetes:helm.sh/v3:Release",
     {"chart": "kube-prometheus-stack", "values": {"grafana": {"service": {"type": "ClusterIP"}, "ingress": {"enabled": False}}}},
     {"chart": "kube-prometheus-stack", "values": {"grafana": {"service": {"type": "LoadBalancer"}},
                                                   "prometheus": {"ingress": {"enabled": True}}}}),
    ("monitoring-not-public", "kubernetes:core/v1:Service",
     {"spec": {"type": "ClusterIP", "ports": [{"port": 3000}]}}, {"spec": {"type": "NodePort", "ports": [{"port": 9090}]}}),
    ("monitoring-not-public", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
     {"cidrIpv4": "203.0.113.0/24", "fromPort": 443, "toPort": 443, "ipProtocol": "tcp"},
     {"cidrIpv4": "203.0.113.0/24", "fromPort": 3000, "toPort": 3000, "ipProtocol": "tcp"}),
]
NODE_CLASS = {"spec": {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
                       "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": True}}],
                       "amiSelectorTerms": [{"alias": "al2023@v20260714"}]}}
CASES += [
    ("node-pools-limited", "kubernetes:karpenter.sh/v1:NodePool", {"spec": {"limits": {"cpu": "80", "memory": "320Gi"}}},
     {"spec": {"limits": {"cpu": "80"}}}),
    ("node-classes-hardened", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", NODE_CLASS,
     {"spec": {**NODE_CLASS["spec"], "amiSelectorTerms": [{"alias": "al2023@latest"}]}}),
    ("node-classes-hardened", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", NODE_CLASS,
     {"spec": {**NODE_CLASS["spec"], "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}}}),
    ("node-classes-hardened", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", NODE_CLASS,
     {"spec": {k: v for k, v in NODE_CLASS["spec"].items() if k != "blockDeviceMappings"}}),
]
GPU_POOL = ("kubernetes:karpenter.sh/v1:NodePool", "gpu", {"spec": {
    "limits": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"},
    "template": {"spec": {"taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]}}}})
STACK_CASES = [
    # policy, passing resources, failing resources (the old rendering)
    ("egress-limited",
     [("kubernetes:ray.io/v1:RayService", "rs", {"metadata": {"namespace": "ray"}}),
      ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny", {"metadata": {"namespace": "ray"}, "spec": {
          "podSelector": {}, "policyTypes": ["Egress"], "egress": []}}),
      ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "https", {"metadata": {"namespace": "ray"}, "spec": {
          "podSelector": {}, "policyTypes": ["Egress"], "egress": [
              {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]}})],
     # the old rendering: Ingress-only policies, egress open
     [("kubernetes:ray.io/v1:RayService", "rs", {"metadata": {"namespace": "ray"}}),
      ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny", {"metadata": {"namespace": "ray"}, "spec": {
          "podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}})]),
    ("gpu-device-plugin",
     [("eks:index:ManagedNodeGroup", "gpu", {"amiType": "AL2023_x86_64_NVIDIA",
                                             "taints": [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"}]}),
      ("kubernetes:helm.sh/v3:Release", "plugin", {"chart": "nvidia-device-plugin", "values": {
          "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}})],
     # the old prod rendering: a GPU group and nothing that advertises its GPUs
     [("eks:index:ManagedNodeGroup", "gpu", {"amiType": "AL2023_x86_64_NVIDIA",
                                             "taints": [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"}]})]),
    ("gpu-device-plugin",  # the same for a Karpenter GPU pool
     [GPU_POOL, ("kubernetes:helm.sh/v3:Release", "plugin", {"chart": "nvidia-device-plugin", "values": {
         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}})],
     [GPU_POOL]),
    ("cni-through-irsa",
     [("aws:iam/role:Role", "node", {"assumeRolePolicy": '{"Principal": {"Service": "ec2.amazonaws.com"}}'}),
      ("aws:iam/role:Role", "cni", {"assumeRolePolicy": '{"Action": "sts:AssumeRoleWithWebIdentity"}'}),
      ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "cni-policy",
       {"role": "cni", "policyArn": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"}),
      ("eks:index:Cluster", "c", {}), ("aws:eks/addon:Addon", "vpc-cni", {"addonName": "vpc-cni", "serviceAccountRoleArn": "arn"})],
     [("aws:iam/role:Role", "node", {"assumeRolePolicy": '{"Principal": {"Service": "ec2.amazonaws.com"}}'}),
      ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "node-cni",
       {"role": "node", "policyArn": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"}),
      ("eks:index:Cluster", "c", {})]),
    ("network-policies",
     [(RS, "rs", {"metadata": {"namespace": "ray"}}),
      ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny",
       {"metadata": {"namespace": "ray"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})],
     [(RS, "rs", {"metadata": {"namespace": "ray"}})]),
]


@pytest.mark.parametrize("policy,resource_type,good,bad", CASES, ids=[f"{c[0]}:{c[1].rsplit(':', 1)[-1]}" for c in CASES])
def test_policy_passes_good_and_flags_bad(policy, resource_type, good, bad):
    assert violations(policy, resource_type, good) == []
    assert violations(policy, resource_type, bad), f"{policy} missed {bad}"


def stack_violations(policy: str, resources: list) -> list[str]:
    found: list[str] = []
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    args = StackValidationArgs([PolicyResource(t, props, f"urn:pulumi:s::p::{t}::{name}", name, opts, None, None, [], {})
                                for t, name, props in resources], None)
    BY_NAME[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


@pytest.mark.parametrize("policy,good,bad", STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_stack_policy_passes_good_and_flags_bad(policy, good, bad):
    assert stack_violations(policy, good) == []
    assert stack_violations(policy, bad), f"{policy} missed {bad}"


def test_every_policy_is_exercised():
    assert {c[0] for c in CASES} | {c[0] for c in STACK_CASES} == set(BY_NAME)


def test_literal_secret_env_on_a_ray_pod_is_flagged():
    props = copy.deepcopy(ray_service())
    head = props["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"].append({"name": "HF_TOKEN", "value": "hf_abc"})
    assert violations("secrets-as-secrets", RS, props) == [
        "headGroupSpec: env HF_TOKEN holds a literal secret; use valueFrom.secretKeyRef"]


@pytest.mark.parametrize("stack", [s for s in all_stacks() if s != "local"])
def test_every_declared_resource_of_each_stack_passes_every_policy(stack):
    resources = render(stack_values(stack), stack).resources
    found = [(r.type, r.name, msg) for r in resources
             for name in CHECKS for msg in violations(name, r.type, r.inputs)]
    found += [(name, msg) for name in STACK_CHECKS
              for msg in stack_violations(name, [(r.type, r.name, r.inputs) for r in resources])]
    assert found == []
