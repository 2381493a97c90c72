"""EksCluster: VPC (pulumi-awsx, or an existing one), EKS (pulumi-eks) with managed CPU/GPU node groups and
Karpenter's node pools (aws.eks.karpenter), EBS CSI, gp3 StorageClass.

Least privilege: the node role carries no CNI permissions (the VPC CNI add-on gets them through IRSA),
node launch templates require IMDSv2 with hop limit 1 (pods reach AWS through IRSA only), and the
Kubernetes API is private unless `api_public_cidrs` names who may reach it.

Outputs `kubeconfig` (secret), `provider` (a Kubernetes provider for the cluster), `storage_class_name`,
and `model_cache_storage_class` (an EFS-backed ReadWriteMany class when `enable_efs` is set).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.aws.iam import assume_role_policy, irsa_trust_policy
from rayserve_pulumi.aws.network import ExistingNetwork, network
from rayserve_pulumi.aws.eks.karpenter import Karpenter, KarpenterArgs
from rayserve_pulumi.aws.eks.settings import EksSettings, Nodes
from rayserve_pulumi.constants import (
    ACCELERATOR_LABEL, EKS_CHARTS_REPOSITORY, GPU_RESOURCE, LB_CONTROLLER_CHART, LB_CONTROLLER_VERSION,
    NODE_GROUP_LABEL, NVIDIA_DEVICE_PLUGIN_CHART, NVIDIA_DEVICE_PLUGIN_REPOSITORY, NVIDIA_DEVICE_PLUGIN_VERSION,
)

LB_CONTROLLER_POLICY = Path(__file__).with_name("lbc-iam-policy.json")  # upstream's, for LB_CONTROLLER_VERSION
LB_CONTROLLER_SA = "aws-load-balancer-controller"

__all__ = [
    "GPU_TAINT", "NODE_POLICIES", "CNI_POLICY", "NODE_METADATA", "LB_CONTROLLER_POLICY", "LB_CONTROLLER_SA",
    "node_group_taints", "device_plugin_values", "node_group_labels", "EksClusterArgs", "EksCluster",
]

GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NO_SCHEDULE"}
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
CNI_POLICY = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"  # on the aws-node service account's IRSA role only
NODE_METADATA = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}


def node_group_taints(group: Nodes) -> list[dict]:
    return [GPU_TAINT] if group.gpu else []


def device_plugin_values() -> dict:
    """The device plugin's Helm values: GPU nodes only (their label and taint)."""
    return {"nodeSelector": {ACCELERATOR_LABEL: "nvidia"},
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]}


def node_group_labels(group: Nodes) -> dict[str, str]:
    return {**group.labels, NODE_GROUP_LABEL: group.name, ACCELERATOR_LABEL: "nvidia" if group.gpu else "none"}


@dataclass(frozen=True)
class EksClusterArgs:
    settings: EksSettings = arg("VPC, Kubernetes version, node groups, StorageClass name")
    network: Optional[ExistingNetwork] = arg("a VPC that exists already (ids may come from another stack); "
                                             "default: a new VPC from settings", None)
    enable_efs: bool = arg("an encrypted EFS file system and a ReadWriteMany StorageClass (model cache)", False)
    load_balancer_controller: bool = arg("the AWS Load Balancer Controller (for a LoadBalancer Serve Service)", False)
    tags: dict[str, str] = arg("AWS tags on every resource", default_factory=dict)


class EksCluster(pulumi.ComponentResource):
    """Outputs `kubeconfig` (secret), `provider`, `storage_class_name`, `model_cache_storage_class`."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    storage_class_name: pulumi.Output[str]
    model_cache_storage_class: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: EksClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:aws:EksCluster", name, None, opts)
        s, child = args.settings, pulumi.ResourceOptions(parent=self)

        self.network = network(name, args.network, s.availability_zones, dict(
            cidr_block=s.vpc_cidr,
            number_of_availability_zones=s.availability_zones,
            enable_dns_hostnames=True,
            nat_gateways={"strategy": s.nat_gateways},
            subnet_specs=[
                {"type": "Public", "tags": {"kubernetes.io/role/elb": "1", **args.tags}},
                {"type": "Private", "tags": {"kubernetes.io/role/internal-elb": "1", **args.tags}},
            ],
            tags=args.tags,
        ), child)
        net = self.network
        self.node_role = aws.iam.Role(f"{name}-node-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                                      tags=args.tags, opts=child)
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{arn.rsplit('/', 1)[1]}", role=self.node_role.name,
                                         policy_arn=arn, opts=child)
            for arn in NODE_POLICIES
        ]
        secrets_key = aws.kms.Key(f"{name}-secrets-key", description=f"{name} EKS secrets envelope encryption",
                                  enable_key_rotation=True, tags=args.tags, opts=child)
        self.cluster = eks.Cluster(
            f"{name}-cluster",
            name=name,
            vpc_id=net.vpc_id,
            public_subnet_ids=net.public_subnet_ids,
            private_subnet_ids=net.private_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            authentication_mode=eks.AuthenticationMode.API,
            version=s.kubernetes_version,
            create_oidc_provider=True,
            use_default_vpc_cni=True,  # EKS' own VPC CNI, taken over below as an add-on with an IRSA role
            # Managed node groups only: their nodes (launch templates naming no security group) get the
            # security group EKS creates for the cluster, and so does the control plane; pulumi-eks' own node
            # and cluster groups would be attached to nothing. With this, cluster_security_group_id is EKS'.
            skip_default_security_groups=True,
            endpoint_public_access=bool(s.api_public_cidrs),
            public_access_cidrs=list(s.api_public_cidrs) or None,
            endpoint_private_access=True,
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            instance_roles=[self.node_role],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig_json)
        self.cluster_name = pulumi.Output.all(name, self.cluster.kubeconfig_json).apply(lambda a: a[0])
        cni_role = self._irsa_role(name, "vpc-cni", "kube-system", "aws-node", CNI_POLICY, args.tags)
        cni = aws.eks.Addon(f"{name}-vpc-cni", cluster_name=self.cluster_name, addon_name="vpc-cni",
                            service_account_role_arn=cni_role.arn, resolve_conflicts_on_create="OVERWRITE",
                            # the network policy agent enforces the RayService's NetworkPolicies
                            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
                            resolve_conflicts_on_update="OVERWRITE", opts=child)
        self.node_groups = {g.name: self._node_group(name, g, args.tags, cni) for g in s.node_groups}
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        k8s_child = pulumi.ResourceOptions(parent=self, provider=self.provider)

        ebs_role = self._irsa_role(name, "ebs-csi", "kube-system", "ebs-csi-controller-sa",
                                   "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy", args.tags)
        ebs_addon = aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=self.cluster_name, addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn, resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.node_groups.values())),
        )
        gp3 = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": s.storage_class, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Retain",
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ebs_addon]),
        )
        self.storage_class_name = gp3.metadata.name
        self.model_cache_storage_class = self._efs(name, args, k8s_child) if args.enable_efs else None
        self.load_balancer_controller = self._load_balancer_controller(name, args.tags) \
            if args.load_balancer_controller else None
        self.karpenter = Karpenter(f"{name}-karpenter", KarpenterArgs(
            settings=s.karpenter, cluster_name=self.cluster_name,
            oidc_provider_arn=self.cluster.oidc_provider_arn, oidc_provider_url=self.cluster.oidc_provider_url,
            node_role=self.node_role, subnet_ids=net.private_subnet_ids,
            security_group_ids=pulumi.Output.from_input(self.cluster.cluster_security_group_id).apply(lambda g: [g]),
            labels={p.name: node_group_labels(p) for p in s.karpenter.node_pools}, provider=self.provider,
            depends_on=list(self.node_groups.values()), tags=args.tags), child) if s.karpenter else None
        gpu_groups = [self.node_groups[g.name] for g in s.node_groups if g.gpu]
        self.device_plugin = self._device_plugin(
            name, [*gpu_groups, *([self.karpenter] if self.karpenter else [])]) if s.gpu_nodes() else None
        self.register_outputs({
            "kubeconfig": self.kubeconfig, "cluster_name": self.cluster_name,
            "storage_class_name": self.storage_class_name, "vpc_id": net.vpc_id,
            "oidc_provider_arn": self.cluster.oidc_provider_arn,
        })

    def _node_group(self, name: str, g: Nodes, tags: dict, cni: aws.eks.Addon) -> eks.ManagedNodeGroup:
        """A managed node group on a launch template of ours (IMDSv2, hop limit 1, encrypted root volume),
        joining once the VPC CNI has its IRSA role."""
        child = pulumi.ResourceOptions(parent=self)
        template = aws.ec2.LaunchTemplate(
            f"{name}-{g.name}-lt", metadata_options=NODE_METADATA, update_default_version=True,
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "volume_size": g.disk_size_gb, "volume_type": "gp3", "encrypted": "true",
                "delete_on_termination": "true"}}],
            tags=tags, opts=child)
        return eks.ManagedNodeGroup(
            f"{name}-{g.name}",
            cluster=self.cluster,
            node_group_name_prefix=f"{g.name}-",
            node_role=self.node_role,
            subnet_ids=self.network.private_subnet_ids,
            instance_types=g.instance_types,
            ami_type="AL2023_x86_64_NVIDIA" if g.gpu else "AL2023_x86_64_STANDARD",
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            scaling_config={"min_size": g.min_size, "desired_size": g.desired_size, "max_size": g.max_size},
            labels=node_group_labels(g),
            taints=node_group_taints(g),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cni]),
        )

    def _load_balancer_controller(self, name: str, tags: dict) -> k8s.helm.v3.Release:
        """The AWS Load Balancer Controller (pinned chart, IRSA with upstream's policy): Services annotated
        `aws-load-balancer-type: external` get an NLB with IP targets and a security group of its own, which
        admits loadBalancerSourceRanges; the controller opens the target port from it on the pods' group."""
        child = pulumi.ResourceOptions(parent=self)
        policy = aws.iam.Policy(f"{name}-lb-controller", description="AWS Load Balancer Controller",
                                policy=LB_CONTROLLER_POLICY.read_text(), tags=tags, opts=child)
        role = self._irsa_role(name, "lb-controller", "kube-system", LB_CONTROLLER_SA, policy.arn, tags)
        return k8s.helm.v3.Release(
            f"{name}-lb-controller", name=LB_CONTROLLER_CHART, chart=LB_CONTROLLER_CHART, version=LB_CONTROLLER_VERSION,
            repository_opts={"repo": EKS_CHARTS_REPOSITORY}, namespace="kube-system", atomic=True,
            cleanup_on_fail=True,
            values={"clusterName": self.cluster_name, "vpcId": self.network.vpc_id,
                    "region": aws.get_region_output().region,
                    "serviceAccount": {"create": True, "name": LB_CONTROLLER_SA,
                                       "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
                    "enableBackendSecurityGroup": True, "defaultTargetType": "ip"},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(self.node_groups.values())))

    def _device_plugin(self, name: str, gpu_groups: list) -> k8s.helm.v3.Release:
        """NVIDIA's device plugin (pinned chart) on the GPU nodes only: it tolerates their taint and selects
        their accelerator label, so `nvidia.com/gpu` is advertised and GPU pods schedule."""
        return k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin", name=NVIDIA_DEVICE_PLUGIN_CHART, chart=NVIDIA_DEVICE_PLUGIN_CHART,
            version=NVIDIA_DEVICE_PLUGIN_VERSION, repository_opts={"repo": NVIDIA_DEVICE_PLUGIN_REPOSITORY},
            namespace="kube-system", atomic=True, cleanup_on_fail=True, values=device_plugin_values(),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=gpu_groups))

    def _irsa_role(self, name: str, short: str, namespace: str, sa: str, policy_arn: pulumi.Input[str],
                   tags: dict) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-{short}-role",
            assume_role_policy=irsa_trust_policy(self.cluster.oidc_provider_arn, self.cluster.oidc_provider_url, namespace, sa),
            tags=tags, opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-{short}-policy", role=role.name, policy_arn=policy_arn, opts=child)
        return role

    def _efs(self, name: str, args: EksClusterArgs, k8s_child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """Encrypted EFS + CSI driver + a ReadWriteMany StorageClass for the shared model cache."""
        child = pulumi.ResourceOptions(parent=self)
        fs = aws.efs.FileSystem(f"{name}-models", encrypted=True, performance_mode="generalPurpose",
                                throughput_mode="elastic", tags=args.tags, opts=child)
        sg = aws.ec2.SecurityGroup(
            f"{name}-efs-sg", vpc_id=self.network.vpc_id, description="NFS from cluster nodes only",
            # the EKS cluster security group: what the managed nodes (and so the pods, VPC CNI) carry
            ingress=[{"protocol": "tcp", "from_port": 2049, "to_port": 2049,
                      "security_groups": [self.cluster.cluster_security_group_id]}],
            tags=args.tags, opts=child,
        )
        for i in range(args.settings.availability_zones):
            aws.efs.MountTarget(f"{name}-models-mt-{i}", file_system_id=fs.id,
                                subnet_id=self.network.private_subnet_ids[i], security_groups=[sg.id], opts=child)
        role = self._irsa_role(name, "efs-csi", "kube-system", "efs-csi-controller-sa",
                               "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy", args.tags)
        addon = aws.eks.Addon(f"{name}-efs-csi", cluster_name=self.cluster_name, addon_name="aws-efs-csi-driver",
                              service_account_role_arn=role.arn, resolve_conflicts_on_update="OVERWRITE", opts=child)
        sc = k8s.storage.v1.StorageClass(
            f"{name}-efs",
            metadata={"name": "efs-models"},
            provisioner="efs.csi.aws.com",
            parameters={"provisioningMode": "efs-ap", "fileSystemId": fs.id, "directoryPerms": "750"},
            reclaim_policy="Retain",
            opts=pulumi.ResourceOptions.merge(k8s_child, pulumi.ResourceOptions(depends_on=[addon])),
        )
        return sc.metadata.name
