"""examples/stack-reference under Pulumi's mocks: values from other stacks (StackReference outputs) flow into
the component's args and land where they belong; a bad one fails the deployment with one line naming the arg.
The mocks answer the StackReference reads with the outputs below (no Pulumi service here)."""
from __future__ import annotations

import pytest

from rayserve_pulumi import preview
from tests.helpers import ROOT
from tests.pulumi_harness import Rendered, render

EXAMPLE = ROOT / "examples" / "stack-reference" / "__main__.py"
NETWORK = {"vpc_id": "vpc-0a1b2c3d4e5f60718",
           "private_subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
           "public_subnet_ids": ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"],
           "serve_certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/0b9f6a52-5a1e-4c7e-9d3f-2a8e4c6b1d70",
           "office_cidrs": ["203.0.113.0/24", "198.51.100.0/24"]}
IMAGE = {"image_ref": "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps@sha256:" + "cd" * 32}
STACKS = {"network_stack": "acme/network/prod", "image_stack": "acme/serve-image/prod"}


def _run(monkeypatch, network: dict, image: dict, into: Rendered | None = None) -> Rendered:
    def outputs(name: str, inputs: dict) -> dict:
        return {"outputs": network if inputs["name"] == STACKS["network_stack"] else image, "secretOutputNames": []}

    monkeypatch.setitem(preview.FAKE_OUTPUTS, "pulumi:pulumi:StackReference", outputs)

    def program():
        scope: dict = {"__name__": "__main__"}
        exec(compile(EXAMPLE.read_text(), str(EXAMPLE), "exec"), scope)
        return {"app_urls": scope["platform"].app_urls}

    return render(STACKS, "prod", program=program, into=into)


def test_values_from_other_stacks_land_where_they_belong(monkeypatch):
    r = _run(monkeypatch, NETWORK, IMAGE)
    assert not r.of_type("awsx:ec2:Vpc")  # the network stack's VPC, no new one
    cluster = r.one("eks:index:Cluster").inputs
    assert cluster["vpcId"] == NETWORK["vpc_id"]
    assert cluster["privateSubnetIds"] == NETWORK["private_subnet_ids"]
    assert cluster["publicSubnetIds"] == NETWORK["public_subnet_ids"]
    assert all(g.inputs["subnetIds"] == NETWORK["private_subnet_ids"] for g in r.of_type("eks:index:ManagedNodeGroup"))
    spec = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]
    service = spec["serveService"]
    assert service["spec"]["loadBalancerSourceRanges"] == NETWORK["office_cidrs"]
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == \
        NETWORK["serve_certificate_arn"]
    assert service["spec"]["ports"][0]["port"] == 443
    head = spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == IMAGE["image_ref"]
    assert not r.of_type("docker-build:index:Image") and not r.of_type("aws:ecr/repository:Repository")
    assert sorted(r.outputs["app_urls"]) == ["calc", "fruit"]


@pytest.mark.parametrize("network,image,expected", [
    ({**NETWORK, "vpc_id": "vpc-XYZ"}, IMAGE, "network.vpc_id: 'vpc-XYZ' is not a vpc id"),
    ({**NETWORK, "private_subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1"]}, IMAGE, "network.private_subnet_ids:"),
    ({**NETWORK, "serve_certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"}, IMAGE,
     "serve_tls_certificate_arn:"),
    ({**NETWORK, "office_cidrs": ["0.0.0.0/0"]}, IMAGE, "allowed_cidrs[0]: '0.0.0.0/0' is the whole internet"),
    (NETWORK, {"image_ref": "rayproject/ray:latest"}, "image:"),
])
def test_a_bad_value_from_another_stack_fails_naming_the_arg(monkeypatch, network, image, expected):
    declared = Rendered()
    with pytest.raises(Exception) as info:
        _run(monkeypatch, network, image, into=declared)
    assert expected in str(info.value), str(info.value)


def test_the_vm_platform_takes_the_same_values_from_another_stack(monkeypatch):
    """VmPlatform with the network, certificate, CIDRs and image as Outputs: the NLB's source ranges become one
    rule of many blocks (their count is unknown until the other stack's value is), nothing else changes."""
    import pulumi

    from rayserve_pulumi.aws.network import ExistingNetwork
    from rayserve_pulumi.aws.vm import VmPlatform, VmPlatformArgs
    from rayserve_pulumi.config.validate import validate_stack
    from tests.pulumi_harness import stack_values

    cfg, serve_config = validate_stack(stack_values("vm"), ROOT)
    other = {k: pulumi.Output.from_input(v) for k, v in {**NETWORK, **IMAGE}.items()}

    def program():
        vm = VmPlatform("vm", VmPlatformArgs(
            vm=cfg.vm, serve_config=serve_config, image=cfg.image, serve_env=cfg.serve.runtime_env(),
            image_uri=other["image_ref"], tls_certificate_arn=other["serve_certificate_arn"],
            allowed_cidrs=other["office_cidrs"],
            network=ExistingNetwork(other["vpc_id"], other["private_subnet_ids"], other["public_subnet_ids"])))
        return {"app_urls": vm.app_urls}

    r = render({}, "vm", program=program)
    assert not r.of_type("awsx:ec2:Vpc") and not r.of_type("docker-build:index:Image")
    allowed = r.one("aws:ec2/securityGroupRule:SecurityGroupRule").inputs
    assert allowed["cidrBlocks"] == NETWORK["office_cidrs"] and allowed["fromPort"] == allowed["toPort"] == 443
    ingress = r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert not [i for i in ingress if i.inputs.get("cidrIpv4")], "the stack's own CIDRs are not used as well"
    assert r.one("aws:lb/listener:Listener").inputs["certificateArn"] == NETWORK["serve_certificate_arn"]
    assert r.one("aws:lb/loadBalancer:LoadBalancer").inputs["subnets"] == NETWORK["public_subnet_ids"]
    assert r.one("aws:ec2/instance:Instance").inputs["subnetId"] == NETWORK["private_subnet_ids"][0]
    egress = r.one("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "nlb-egress").inputs
    assert egress["cidrIpv4"] == preview.FAKE_CALLS["aws:ec2/getVpc:getVpc"]["cidrBlock"]  # the VPC's own range
