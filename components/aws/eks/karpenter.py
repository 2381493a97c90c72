"""Karpenter on the EKS cluster: nodes that come and go with Ray's pods.

Ray's autoscaler adds worker pods; Karpenter launches a node of a pool whose instance types and limits fit
them, and removes nodes that stay empty or underused (`consolidate_after`). The Ray head is never disrupted
voluntarily: its pod carries `karpenter.sh/do-not-disrupt` and a PodDisruptionBudget (kuberay.rayservice).

- The controller runs on the managed system group (the chart keeps it off Karpenter's own nodes), with IRSA
  and a policy scoped to this cluster's tagged instances, launch templates and instance profiles.
- An SQS queue fed by EventBridge (spot interruption, rebalance, scheduled maintenance, state changes)
  lets it drain a node before EC2 takes it away.
- CRDs come from the `karpenter-crd` chart (templates, so a chart bump upgrades them); the controller's
  chart skips its own copy.
- Nodes: one EC2NodeClass per pool (the pinned AL2023 alias, the cluster's private subnets and security
  group by id, IMDSv2 with hop limit 1, an encrypted gp3 root) and one NodePool (the pool's instance types
  its limits hold, labels and the GPU taint of a managed group of the same kind).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.aws.eks.settings import KarpenterSettings, NodePool
from rayserve_pulumi.aws.iam import irsa_trust_policy
from rayserve_pulumi.config.instances import instance_type
from rayserve_pulumi.constants import GPU_RESOURCE, KARPENTER_CHART_REPOSITORY

__all__ = [
    "NAMESPACE", "SERVICE_ACCOUNT", "NODE_CLASS_API", "NODE_POOL_API", "INTERRUPTION_EVENTS", "controller_policy",
    "render_node_class", "render_node_pool", "KarpenterArgs", "Karpenter",
]

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_POOL_API = "karpenter.sh/v1"
# EventBridge detail types Karpenter acts on (source, detail-type): it drains the node ahead of EC2.
INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state": ("aws.ec2", "EC2 Instance State-change Notification"),
    "reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


def controller_policy(cluster: str, region: str, account: str, partition: str, node_role_arn: str,
                      queue_arn: str) -> str:
    """The controller's permissions, each scoped the way Karpenter's reference policy scopes it: it launches,
    tags and terminates only what carries this cluster's ownership tag and a nodepool tag, passes only the
    node role and only to EC2, manages only its own instance profiles, and reads its interruption queue."""
    ec2 = f"arn:{partition}:ec2:{region}"
    profiles = f"arn:{partition}:iam::{account}:instance-profile/*"
    owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
    requested = {f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned", "aws:RequestTag/eks:eks-cluster-name": cluster}
    launched = [f"{ec2}:*:{kind}/*" for kind in
                ("fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request")]
    in_region = {"aws:RequestedRegion": region}

    def allow(sid: str, actions, resources, **condition) -> dict:
        statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
        return {**statement, "Condition": condition} if condition else statement

    nodepool = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    nodeclass = {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    statements = [
        allow("LaunchFromSharedResources", ["ec2:RunInstances", "ec2:CreateFleet"],
              [f"{ec2}::image/*", f"{ec2}::snapshot/*", *(f"{ec2}:*:{kind}/*" for kind in
               ("security-group", "subnet", "capacity-reservation", "placement-group"))]),
        allow("LaunchFromOwnLaunchTemplates", ["ec2:RunInstances", "ec2:CreateFleet"], f"{ec2}:*:launch-template/*",
              StringEquals=owned, StringLike=nodepool),
        allow("LaunchTaggedForThisCluster", ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"], launched,
              StringEquals=requested, StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"}),
        allow("TagOnLaunch", "ec2:CreateTags", launched,
              StringEquals={**requested, "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
              StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"}),
        allow("TagOwnInstances", "ec2:CreateTags", f"{ec2}:*:instance/*", StringEquals=owned, StringLike=nodepool,
              StringEqualsIfExists={"aws:RequestTag/eks:eks-cluster-name": cluster},
              **{"ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}),
        allow("DeleteOwn", ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
              [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"], StringEquals=owned, StringLike=nodepool),
        allow("PassNodeRoleToEc2", "iam:PassRole", node_role_arn,
              StringEquals={"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}),
        allow("CreateOwnInstanceProfiles", "iam:CreateInstanceProfile", profiles,
              StringEquals={**requested, "aws:RequestTag/topology.kubernetes.io/region": region},
              StringLike={"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}),
        allow("TagOwnInstanceProfiles", "iam:TagInstanceProfile", profiles,
              StringEquals={**owned, "aws:ResourceTag/topology.kubernetes.io/region": region, **requested,
                            "aws:RequestTag/topology.kubernetes.io/region": region},
              StringLike={**nodeclass, "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}),
        allow("ManageOwnInstanceProfiles", ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                                            "iam:DeleteInstanceProfile"], profiles,
              StringEquals={**owned, "aws:ResourceTag/topology.kubernetes.io/region": region}, StringLike=nodeclass),
        allow("ReadInstanceProfiles", "iam:GetInstanceProfile", profiles),
        allow("ListInstanceProfiles", "iam:ListInstanceProfiles", "*"),
        allow("DescribeCluster", "eks:DescribeCluster", f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"),
        allow("ReadInterruptionQueue", ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"], queue_arn),
        allow("DescribeInRegion", [f"ec2:Describe{what}" for what in (
            "CapacityReservations", "Images", "Instances", "InstanceStatus", "InstanceTypeOfferings", "InstanceTypes",
            "LaunchTemplates", "PlacementGroups", "SecurityGroups", "SpotPriceHistory", "Subnets")], "*",
              StringEquals=in_region),
        allow("ReadAmiParameters", "ssm:GetParameter", f"arn:{partition}:ssm:{region}::parameter/aws/service/*"),
        allow("ReadPrices", "pricing:GetProducts", "*"),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def render_node_class(pool: NodePool, ami_alias: str, role: str, subnet_ids: list[str], security_group_ids: list[str],
                      tags: dict[str, str]) -> dict:
    """The pool's EC2NodeClass: what a managed group's launch template says, for Karpenter's nodes."""
    return {
        "apiVersion": NODE_CLASS_API, "kind": "EC2NodeClass", "metadata": {"name": pool.name},
        "spec": {
            "role": role,
            "amiSelectorTerms": [{"alias": ami_alias}],  # AL2023; Karpenter picks the NVIDIA variant for GPU types
            "subnetSelectorTerms": [{"id": s} for s in subnet_ids],
            "securityGroupSelectorTerms": [{"id": g} for g in security_group_ids],
            "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpTokens": "required",
                                "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
                "volumeSize": f"{pool.disk_size_gb}Gi", "volumeType": "gp3", "encrypted": True,
                "deleteOnTermination": True}}],
            "tags": dict(tags),
        },
    }


def render_node_pool(pool: NodePool, labels: dict[str, str]) -> dict:
    """The NodePool: the instance types its limits hold, the group labels Ray pods select, GPU taint."""
    held = [n for n in pool.instance_types if pool.holds(instance_type(n))]
    template: dict = {
        "nodeClassRef": {"group": NODE_CLASS_API.split("/")[0], "kind": "EC2NodeClass", "name": pool.name},
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": held},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(pool.capacity_types)},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        "expireAfter": pool.expire_after,
    }
    if pool.gpu:
        template["taints"] = [{"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}]
    limits = {"cpu": str(pool.limits.cpu), "memory": f"{pool.limits.memory_gib}Gi"}
    if pool.limits.gpus:
        limits[GPU_RESOURCE] = str(pool.limits.gpus)
    return {
        "apiVersion": NODE_POOL_API, "kind": "NodePool", "metadata": {"name": pool.name},
        "spec": {
            "template": {"metadata": {"labels": dict(labels)}, "spec": template},
            "limits": limits,
            # one node at a time: a consolidated node's Serve replicas move before the next one goes
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                           "consolidateAfter": pool.consolidate_after, "budgets": [{"nodes": "1"}]},
        },
    }


@dataclass(frozen=True)
class KarpenterArgs:
    settings: KarpenterSettings = arg("chart version, AMI alias and node pools")
    cluster_name: pulumi.Input[str] = arg("the EKS cluster's name")
    oidc_provider_arn: pulumi.Input[str] = arg("the cluster's IAM OIDC provider (IRSA)")
    oidc_provider_url: pulumi.Input[str] = arg("its issuer URL")
    node_role: aws.iam.Role = arg("the role Karpenter's nodes run as (the managed groups' role: its access entry exists)")
    subnet_ids: pulumi.Input[list[str]] = arg("private subnets nodes launch into")
    security_group_ids: pulumi.Input[list[str]] = arg("security groups of the nodes (the EKS cluster security group, "
                                                      "like the managed groups' nodes)")
    labels: dict[str, dict[str, str]] = arg("node labels by pool name (the same keys as a managed group's)")
    provider: k8s.Provider = arg("the cluster's Kubernetes provider")
    depends_on: list = arg("what must exist first (the managed groups the controller runs on)", default_factory=list)
    tags: dict[str, str] = arg("AWS tags on every resource and node", default_factory=dict)


class Karpenter(pulumi.ComponentResource):
    """Outputs `interruption_queue` and `node_pools` (names)."""

    def __init__(self, name: str, args: KarpenterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:aws:Karpenter", name, None, opts)
        s, child = args.settings, pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(f"{name}-interruption", message_retention_seconds=300, sqs_managed_sse_enabled=True,
                              tags=args.tags, opts=child)
        aws.sqs.QueuePolicy(f"{name}-interruption", queue_url=queue.url, policy=queue.arn.apply(lambda arn: json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Sid": "EventsSend", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn,
                 "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}},
                {"Sid": "DenyPlainHttp", "Effect": "Deny", "Action": "sqs:*", "Resource": arn, "Principal": "*",
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})), opts=child)
        for short, (source, detail) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(f"{name}-{short}", event_pattern=json.dumps(
                {"source": [source], "detail-type": [detail]}), tags=args.tags, opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{short}", rule=rule.name, arn=queue.arn, opts=child)

        region, identity = aws.get_region_output(), aws.get_caller_identity_output()
        partition = aws.get_partition_output()
        policy = aws.iam.Policy(f"{name}-controller", description="Karpenter controller", tags=args.tags, opts=child,
                                policy=pulumi.Output.all(args.cluster_name, region.region, identity.account_id,
                                                         partition.partition, args.node_role.arn, queue.arn)
                                .apply(lambda a: controller_policy(*a)))
        role = aws.iam.Role(f"{name}-controller", tags=args.tags, opts=child, assume_role_policy=irsa_trust_policy(
            args.oidc_provider_arn, args.oidc_provider_url, NAMESPACE, SERVICE_ACCOUNT))
        attachment = aws.iam.RolePolicyAttachment(f"{name}-controller", role=role.name, policy_arn=policy.arn, opts=child)

        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.depends_on))
        crds = k8s.helm.v3.Release(
            f"{name}-crd", name="karpenter-crd", chart=f"{KARPENTER_CHART_REPOSITORY}/karpenter-crd",
            version=s.chart_version, namespace=NAMESPACE, atomic=True, cleanup_on_fail=True, opts=k8s_opts)
        controller = k8s.helm.v3.Release(
            f"{name}-controller", name="karpenter", chart=f"{KARPENTER_CHART_REPOSITORY}/karpenter",
            version=s.chart_version, namespace=NAMESPACE, atomic=True, cleanup_on_fail=True, skip_crds=True,
            # the API endpoint is found through eks:DescribeCluster
            values={"settings": {"clusterName": args.cluster_name, "interruptionQueue": queue.name},
                    "serviceAccount": {"name": SERVICE_ACCOUNT, "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
                    "controller": {"resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                                 "limits": {"cpu": "1", "memory": "1Gi"}}}},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[crds, attachment])))

        nodes_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[controller])
        self.node_pools = []
        for pool in s.node_pools:
            node_class = pulumi.Output.all(args.node_role.name, args.subnet_ids, args.security_group_ids).apply(
                lambda a, pool=pool: render_node_class(pool, s.ami_alias, a[0], a[1], a[2], args.tags))
            k8s.apiextensions.CustomResource(f"{name}-{pool.name}-class", api_version=NODE_CLASS_API, kind="EC2NodeClass",
                                             metadata={"name": pool.name}, spec=node_class["spec"], opts=nodes_opts)
            rendered = render_node_pool(pool, args.labels[pool.name])
            self.node_pools.append(k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-pool", api_version=NODE_POOL_API, kind="NodePool", metadata=rendered["metadata"],
                spec=rendered["spec"], opts=nodes_opts))
        self.interruption_queue = queue.name
        self.register_outputs({"interruption_queue": self.interruption_queue,
                               "node_pools": [pool.name for pool in s.node_pools]})
