"""Wiring: every connection a stack needs is allowed by what it declares (security groups, what they are attached
to, NetworkPolicies), and connections it must not allow are refused. The model and its assumptions, with their
sources: tests/wiring.py. The EKS Serve load balancer's path is the load balancer controller's to open and is
not modelled here; the VM's NLB is."""
from __future__ import annotations

import copy
import ipaddress

import pytest

from rayserve_pulumi.constants import DASHBOARD_PORT, GCS_PORT, METRICS_PORT, REDIS_PORT, SERVE_PORT
from tests.pulumi_harness import render, stack_values
from rayserve_pulumi.aws.vm.settings import VmSettings
from tests.wiring import ALL, Endpoint, Rule, from_rendered

RAY_WORKER_PORT = 10002  # Ray's worker port range starts here


def _ip(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + n)


def eks_world(stack: str, rendered=None):
    values = stack_values(stack)
    r = rendered or render(values, stack)
    cluster_sg = r.one("eks:index:Cluster").state["clusterSecurityGroupId"]
    # A1: EKS' cluster group admits all from itself and lets all out
    net = from_rendered(r, {cluster_sg: [Rule(ALL, 0, 65535, groups=(cluster_sg,))]})
    net.add("egress", cluster_sg, Rule(ALL, 0, 65535, cidrs=("0.0.0.0/0",)))
    templates = r.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    node_groups = set().union(*[set(lt.inputs.get("vpcSecurityGroupIds") or [cluster_sg]) for lt in templates])  # A1
    pool_groups = {p.inputs["metadata"]["name"]: {t["id"] for t in p.inputs["spec"]["securityGroupSelectorTerms"]}
                   for p in r.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")}  # A6
    vpc = values["eks"].get("vpc_cidr", "10.0.0.0/16")
    rs = values["ray_service"]
    spec = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]
    ray_labels = spec["headGroupSpec"]["template"]["metadata"]["labels"]

    def pod(name, n, namespace, labels, groups=None):  # A2: a pod carries its node's groups and a VPC address
        return Endpoint(name, _ip(vpc, n), set(groups or node_groups), namespace, labels)

    worker_on = pool_groups.get(rs["worker_groups"][0].get("node_group"))  # a Karpenter node's groups, if there

    world = {
        "node": Endpoint("node", _ip(vpc, 5), set(node_groups)),
        "api": Endpoint("api server", _ip(vpc, 6), {cluster_sg}),  # A1
        "head": pod("head", 10, rs["namespace"], {**ray_labels, "ray.io/node-type": "head"}),  # A3
        "worker": pod("worker", 11, rs["namespace"], {**ray_labels, "ray.io/node-type": "worker"}, worker_on),
        "dns": pod("coredns", 12, "kube-system", {"k8s-app": "kube-dns"}),
        "operator": pod("kuberay operator", 13, values.get("kuberay", {}).get("namespace", "kuberay-system"), {}),
        "prometheus": pod("prometheus", 14, values.get("metrics", {}).get("namespace", "monitoring"), {}),
        "stranger": pod("a pod of another namespace", 15, "default", {}),
        "vpc host": Endpoint("another instance in the VPC", _ip(vpc, 16), {"sg-0other000000000"}),
        "ecr": Endpoint("ECR (through NAT)", "52.94.0.10"),
        "internet": Endpoint("the internet", "198.18.0.1"),
    }
    for name, groups in pool_groups.items():
        world[f"{name} pool node"] = Endpoint(f"a Karpenter node of pool {name}", _ip(vpc, 60 + len(world)), groups)
    for sts in r.of_type("kubernetes:apps/v1:StatefulSet"):
        world["redis"] = pod("redis", 20, sts.inputs["metadata"]["namespace"], sts.inputs["spec"]["template"]["metadata"]["labels"])
    service = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"].get("serveService")  # none: KubeRay's Gateway
    annotations = (service or {}).get("metadata", {}).get("annotations") or {}
    if annotations.get("service.beta.kubernetes.io/aws-load-balancer-type") == "external":  # A5
        listener = service["spec"]["ports"][0]
        sources = service["spec"].get("loadBalancerSourceRanges") or [vpc]
        net.add("ingress", "lbc-frontend", Rule("tcp", listener["port"], listener["port"], cidrs=tuple(sources)))
        net.add("egress", "lbc-backend", Rule(ALL, 0, 65535, cidrs=("0.0.0.0/0",)))
        for group in node_groups:
            net.add("ingress", group, Rule("tcp", listener["targetPort"], listener["targetPort"], groups=("lbc-backend",)))
        world["nlb"] = Endpoint("the Serve NLB", _ip(vpc, 40), {"lbc-frontend", "lbc-backend"})
        world["client"] = Endpoint("a client", _ip(sources[0], 7))
        world["listener"], world["target"] = listener["port"], listener["targetPort"]
    for mt in r.of_type("aws:efs/mountTarget:MountTarget")[:1]:
        world["efs"] = Endpoint("EFS mount target", _ip(vpc, 30), set(mt.inputs["securityGroups"]))
    return net, world, r


NEEDED = [  # (from, to, port, protocol)
    ("head", "api", 443, "tcp"), ("operator", "head", DASHBOARD_PORT, "tcp"),
    ("head", "worker", RAY_WORKER_PORT, "tcp"), ("worker", "head", GCS_PORT, "tcp"),
    ("head", "dns", 53, "udp"), ("worker", "dns", 53, "tcp"), ("node", "ecr", 443, "tcp"),
]
REFUSED = [
    ("stranger", "head", DASHBOARD_PORT, "tcp"), ("stranger", "worker", GCS_PORT, "tcp"),
    ("operator", "head", GCS_PORT, "tcp"), ("prometheus", "head", GCS_PORT, "tcp"),
    ("head", "internet", 22, "tcp"), ("worker", "stranger", 8080, "tcp"), ("vpc host", "head", GCS_PORT, "tcp"),
]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_connection_eks_needs_is_allowed_and_nothing_else(stack):
    net, w, _ = eks_world(stack)
    needed = list(NEEDED)
    refused = list(REFUSED)
    if "redis" in w:
        needed += [("head", "redis", REDIS_PORT, "tcp"), ("worker", "redis", REDIS_PORT, "tcp")]
        refused += [("stranger", "redis", REDIS_PORT, "tcp"), ("prometheus", "redis", REDIS_PORT, "tcp"),
                    ("redis", "internet", 443, "tcp")]
    pool_nodes = [k for k in w if k.endswith("pool node")]
    assert bool(pool_nodes) == ("karpenter" in stack_values(stack)["eks"])
    needed += [(n, "ecr", 443, "tcp") for n in pool_nodes] + [(n, "api", 443, "tcp") for n in pool_nodes]
    if "efs" in w:  # the EFS CSI node plugin mounts for the pod on the host's network: the node connects
        needed += [("node", "efs", 2049, "tcp"), *((n, "efs", 2049, "tcp") for n in pool_nodes)]
        refused += [("vpc host", "efs", 2049, "tcp")]
    if stack_values(stack).get("metrics", {}).get("enabled"):
        needed += [("prometheus", "head", METRICS_PORT, "tcp"), ("prometheus", "worker", METRICS_PORT, "tcp")]
    if stack_values(stack)["ray_service"].get("egress") == "https":
        needed += [("worker", "internet", 443, "tcp")]  # the model hub
    else:
        refused += [("worker", "internet", 443, "tcp")]
    if "nlb" in w:
        needed += [("client", "nlb", w["listener"], "tcp"), ("nlb", "worker", w["target"], "tcp")]
        refused += [("nlb", "head", DASHBOARD_PORT, "tcp"), ("internet", "nlb", w["listener"], "tcp"),
                    ("client", "worker", w["target"], "tcp")]
    blocked = [c for c in needed if not net.allows(w[c[0]], w[c[1]], c[2], c[3])]
    leaks = [c for c in refused if net.allows(w[c[0]], w[c[1]], c[2], c[3])]
    assert (blocked, leaks) == ([], [])


def test_the_old_efs_rendering_fails_the_wiring_check():
    """Before: EFS admitted pulumi-eks' own node group, which is attached to no managed node."""
    net, w, r = eks_world("prod")
    old = copy.deepcopy(r)
    efs = old.one("aws:ec2/securityGroup:SecurityGroup", "efs-sg")
    efs.inputs["ingress"][0]["securityGroups"] = ["sg-0pulumi0eks0nodes"]  # pulumi-eks' node group (the mock's)
    old_net, old_w, _ = eks_world("prod", rendered=old)
    assert net.allows(w["node"], w["efs"], 2049)
    assert not old_net.allows(old_w["node"], old_w["efs"], 2049)


def test_the_vm_stack_admits_its_clients_through_the_nlb_only():
    values = stack_values("vm")
    r = render(values, "vm")
    net = from_rendered(r)
    vpc = values["vm"].get("vpc_cidr") or VmSettings.model_fields["vpc_cidr"].default
    nodes = set(r.one("aws:ec2/instance:Instance").inputs["vpcSecurityGroupIds"])
    assert nodes == set(r.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["vpcSecurityGroupIds"])
    lb = Endpoint("nlb", _ip(vpc, 5), set(r.one("aws:lb/loadBalancer:LoadBalancer").inputs["securityGroups"]))
    head, worker = Endpoint("head", _ip(vpc, 10), nodes), Endpoint("worker", _ip(vpc, 11), nodes)
    client = Endpoint("an allowed client", _ip(values["vm"]["allowed_cidrs"][0], 7))
    outsider, ecr = Endpoint("anyone else", "192.0.2.1"), Endpoint("ECR", "52.94.0.10")
    ssm = Endpoint("SSM and its agent's message service (the new head's readiness association)", "52.94.0.20")
    elb = Endpoint("the ELB API (the new head's in-service association asks for its target health)", "52.94.0.30")
    for src, dst, port in [(client, lb, 443), (lb, head, SERVE_PORT), (lb, worker, SERVE_PORT),
                           (head, worker, RAY_WORKER_PORT), (worker, head, GCS_PORT), (worker, head, DASHBOARD_PORT),
                           (head, worker, SERVE_PORT),  # a rollout asks each node's ingress for its routes
                           (head, ecr, 443), (head, ssm, 443), (head, elb, 443)]:
        assert net.allows(src, dst, port), (src.name, dst.name, port)
    for src, dst, port in [(outsider, lb, 443), (client, head, SERVE_PORT), (client, head, DASHBOARD_PORT),
                           (lb, head, DASHBOARD_PORT), (client, lb, SERVE_PORT)]:
        assert not net.allows(src, dst, port), (src.name, dst.name, port)


def test_a_node_class_selecting_another_group_fails_the_wiring_check():
    """Karpenter nodes reach EFS and the API server because their EC2NodeClass selects the cluster group;
    one that selected another group would leave the pods on those nodes without storage."""
    net, w, r = eks_world("prod")
    changed = copy.deepcopy(r)
    for c in changed.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
        c.inputs["spec"]["securityGroupSelectorTerms"] = [{"id": "sg-0other000000000"}]
    other_net, other_w, _ = eks_world("prod", rendered=changed)
    assert net.allows(w["cpu pool node"], w["efs"], 2049)
    assert not other_net.allows(other_w["cpu pool node"], other_w["efs"], 2049)
