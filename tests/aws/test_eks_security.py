"""What the EKS stacks render for least privilege and isolation: CNI through IRSA, IMDS hop limit 1,
a private-by-default API, TLS on the Serve NLB, NetworkPolicies, unprivileged Ray and Redis pods."""
from __future__ import annotations

import json

from rayserve_pulumi.constants import DASHBOARD_PORT, KARPENTER_AMI_ALIAS, SERVICE_LABEL
from rayserve_pulumi.preview import EKS_CLUSTER_SG
from tests.pulumi_harness import render, stack_values

CNI = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
CERT = "arn:aws:acm:us-west-2:123456789012:certificate/0b9f6a52-5a1e-4c7e-9d3f-2a8e4c6b1d70"


def _pods(rs: dict) -> list[dict]:
    cluster = rs["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [g["template"]["spec"] for g in groups]


def test_the_vpc_cni_gets_its_permissions_through_irsa_not_the_node_role(rendered):
    r = rendered["prod"]
    attachments = {a.name: a.inputs["policyArn"] for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    cni_holders = [name for name, arn in attachments.items() if arn == CNI]
    assert cni_holders == ["rayserve-prod-eks-vpc-cni-policy"]
    role = r.one("aws:iam/role:Role", "vpc-cni-role")
    assert "system:serviceaccount:kube-system:aws-node" in role.inputs["assumeRolePolicy"]
    addon = next(a for a in r.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni")
    assert addon.inputs["serviceAccountRoleArn"].endswith("vpc-cni-role")
    assert json.loads(addon.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    node_role = r.one("aws:iam/role:Role", "eks-node-role")
    assert "ec2.amazonaws.com" in node_role.inputs["assumeRolePolicy"]


def test_node_groups_run_on_launch_templates_with_imds_hop_limit_1(rendered):
    for stack, managed in (("dev", 1), ("prod", 1)):
        r = rendered[stack]
        templates = r.of_type("aws:ec2/launchTemplate:LaunchTemplate")
        groups = r.of_type("eks:index:ManagedNodeGroup")
        assert len(templates) == len(groups) == managed
        for lt in templates:
            assert lt.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                                    "httpPutResponseHopLimit": 1}
            assert lt.inputs["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
        assert all("launchTemplate" in g.inputs and "diskSize" not in g.inputs for g in groups)


def test_karpenter_nodes_get_what_the_managed_groups_launch_templates_give(rendered):
    """IMDSv2 with hop limit 1 (pods reach AWS through IRSA only), an encrypted root, the node role, the
    cluster security group and the private subnets: a Karpenter node is no wider than a managed one."""
    r = rendered["prod"]
    classes = r.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert {c.inputs["metadata"]["name"] for c in classes} == {"cpu", "gpu"}
    for c in classes:
        spec = c.inputs["spec"]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert all(b["ebs"]["encrypted"] is True for b in spec["blockDeviceMappings"])
        assert spec["role"] == r.one("aws:iam/role:Role", "eks-node-role").state["name"]
        assert spec["securityGroupSelectorTerms"] == [{"id": EKS_CLUSTER_SG}]
        assert {t["id"] for t in spec["subnetSelectorTerms"]} == {"subnet-priv-a", "subnet-priv-b", "subnet-priv-c"}
        assert spec["amiSelectorTerms"] == [{"alias": KARPENTER_AMI_ALIAS}] and "latest" not in KARPENTER_AMI_ALIAS


def test_the_kubernetes_api_is_private_unless_the_stack_names_who_may_reach_it(rendered):
    cluster = rendered["dev"].one("eks:index:Cluster").inputs
    assert cluster["endpointPublicAccess"] is True and cluster["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["endpointPrivateAccess"] is True
    values = stack_values("dev")
    values["eks"] = {k: v for k, v in values["eks"].items() if k != "api_public_cidrs"}
    private = render(values, "dev").one("eks:index:Cluster").inputs
    assert private["endpointPublicAccess"] is False and "publicAccessCidrs" not in private


def test_an_internet_facing_serve_endpoint_can_terminate_tls_with_an_acm_certificate():
    values = stack_values("prod")
    values["ray_service"] = {**values["ray_service"], "load_balancer_scheme": "internet-facing",
                             "allowed_cidrs": ["203.0.113.0/24"]}
    values["eks"] = {**values["eks"], "serve_tls_certificate_arn": CERT}
    r = render(values, "prod")
    rs = next(x for x in r.of_type("kubernetes:ray.io/v1:RayService")).inputs
    svc = rs["spec"]["serveService"]
    assert svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == CERT
    assert svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "443"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": 8000}]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert r.outputs["app_urls"]["fruit"].startswith("https://") and ":8000" not in r.outputs["app_urls"]["fruit"]


def test_ray_and_redis_pods_run_unprivileged(rendered):
    for stack in ("dev", "prod"):
        r = rendered[stack]
        rs = next(x for x in r.of_type("kubernetes:ray.io/v1:RayService")).inputs
        for pod in _pods(rs):
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
            for c in pod["containers"]:
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        autoscaler = rs["spec"]["rayClusterConfig"]["autoscalerOptions"]["securityContext"]
        assert autoscaler["allowPrivilegeEscalation"] is False
    redis = rendered["prod"].one("kubernetes:apps/v1:StatefulSet").inputs["spec"]["template"]["spec"]
    assert redis["securityContext"]["runAsNonRoot"] is True
    assert redis["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_network_policies_keep_redis_and_the_heads_ports_to_ray_pods(rendered):
    r = rendered["prod"]
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in r.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    name = stack_values("prod")["ray_service"]["name"]
    deny = policies[f"{name}-default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}
    ray = {SERVICE_LABEL: name}
    redis_labels = r.one("kubernetes:apps/v1:StatefulSet").inputs["spec"]["selector"]["matchLabels"]
    redis = policies[f"{name}-redis-from-ray"]
    assert redis["podSelector"]["matchLabels"] == redis_labels
    assert redis["ingress"] == [{"from": [{"podSelector": {"matchLabels": ray}}], "ports": [{"protocol": "TCP", "port": 6379}]}]
    operator = policies[f"{name}-operator-to-dashboard"]
    assert operator["ingress"][0]["ports"] == [{"protocol": "TCP", "port": DASHBOARD_PORT}]
    assert operator["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": stack_values("prod").get("kuberay", {}).get("namespace", "kuberay-system")}}}]
    serve = policies[f"{name}-serve"]
    assert serve["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]  # Serve's port, from anywhere routed here
    pods = r.of_type("kubernetes:ray.io/v1:RayService")[0].inputs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    assert pods["metadata"]["labels"] == ray  # the policies select the pods KubeRay creates from these templates


def _egress(r) -> dict[str, dict]:
    return {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in r.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
            if "Egress" in p.inputs["spec"]["policyTypes"]}


def test_egress_from_the_ray_namespace_is_what_ray_needs_and_nothing_else(rendered):
    """The old rendering's policies were Ingress-only: every Ray and Redis pod could reach anything."""
    dev, prod = _egress(rendered["dev"]), _egress(rendered["prod"])
    name = stack_values("dev")["ray_service"]["name"]
    assert dev[f"{name}-default-deny-egress"] == {"podSelector": {}, "policyTypes": ["Egress"], "egress": []}
    assert dev[f"{name}-dns"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    api = dev[f"{name}-head-to-api-server"]
    assert api["podSelector"]["matchLabels"]["ray.io/node-type"] == "head"
    assert api["egress"] == [{"to": [{"ipBlock": {"cidr": stack_values("dev")["eks"].get("vpc_cidr", "10.0.0.0/16")}}],
                              "ports": [{"protocol": "TCP", "port": 443}]}]
    assert f"{name}-ray-https" not in dev and f"{name}-ray-to-redis" not in dev  # dev: contained, no Redis
    prod_name = stack_values("prod")["ray_service"]["name"]
    assert prod[f"{prod_name}-ray-to-redis"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    https = prod[f"{prod_name}-ray-https"]  # prod opts in: its text app downloads a model from the hub
    assert https["egress"] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]
