"""The `vm` stack rendered under Pulumi mocks: security groups, IMDSv2, IAM, user data."""
from __future__ import annotations

import json


from tests.pulumi_harness import mock_arn, render, stack_values, user_data, with_user_config


def test_vm_security_groups_expose_only_serve(rendered):
    r = rendered["vm"]
    ingress = r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    public = [i.inputs for i in ingress if i.inputs.get("cidrIpv4")]
    assert sorted(i["cidrIpv4"] for i in public) == sorted(stack_values("vm")["vm"]["allowed_cidrs"])
    assert all((i["fromPort"], i["toPort"], i["ipProtocol"]) == (8000, 8000, "tcp") for i in public)
    assert all(i.inputs.get("cidrIpv4") != "0.0.0.0/0" for i in ingress)
    internal = [i.inputs for i in ingress if not i.inputs.get("cidrIpv4")]
    assert len(internal) == 1 and internal[0]["referencedSecurityGroupId"] == internal[0]["securityGroupId"]


def test_vm_instances_require_imdsv2_and_encrypt_every_volume(rendered):
    r = rendered["vm"]
    head = r.one("aws:ec2/instance:Instance").inputs
    lt = r.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    for meta in (head["metadataOptions"], lt["metadataOptions"]):
        assert meta["httpTokens"] == "required"
    assert head["rootBlockDevice"]["encrypted"] is True
    assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    vol = r.one("aws:ebs/volume:Volume")
    assert vol.inputs["encrypted"] is True and vol.options["retain_on_delete"]
    assert vol.inputs["availabilityZone"] == "us-west-2a"  # the head subnet's AZ
    assert r.one("aws:ec2/volumeAttachment:VolumeAttachment").inputs["deviceName"] == "/dev/sdf"


def test_vm_iam_is_least_privilege(rendered):
    r = rendered["vm"]
    policy = json.loads(r.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    by_action = {a: st["Resource"] for st in policy["Statement"] for a in st["Action"]}
    assert by_action["ecr:BatchGetImage"].endswith(":repository/rayserve-apps-vm")
    assert sorted(by_action["ssm:GetParameter"]) == sorted(mock_arn(p.name) for p in r.of_type("aws:ssm/parameter:Parameter"))
    assert by_action["ecr:GetAuthorizationToken"] == "*"  # this action has no resource-level scope
    assert not [a for a in by_action if a.endswith(":*") or a == "*"]
    assert "s3:GetObject" not in by_action  # no bucket configured
    attached = [a.inputs["policyArn"] for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]  # vm.ssm_session_access
    values = stack_values("vm")
    values["vm"] = {**values["vm"], "ssm_session_access": False}
    assert not render(values, "vm").of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")


def test_vm_user_data_runs_the_bundled_bootstrap(rendered):
    r = rendered["vm"]
    head, worker = user_data(r, "head"), user_data(r, "worker")
    assert r.one("aws:ec2/instance:Instance").inputs["userDataReplaceOnChange"] is True
    assert "cd /opt/rayserve\npython3 -m rayserve_pulumi.node_agent head --mode docker --image " + r.outputs["image"] in head
    assert "--config-ssm /rayserve-vm-vm/serve-config" in head and "--gcs-redis" in head
    assert "--auth-token-ssm /rayserve-vm-vm/ray-auth-token" in head and "--auth-token-ssm /rayserve-vm-vm/ray-auth-token" in worker
    token = r.one("aws:ssm/parameter:Parameter", "ray-auth-token")
    assert token.inputs["type"] == "SecureString" and token.inputs["value"].startswith("(secret: random password")
    assert "python3 -m rayserve_pulumi.node_agent worker --mode docker" in worker and "--head-address 10.20.1.10:6379" in worker
    assert "MangoStand" not in head  # the Serve config is not in user data
    assert len(head.encode()) < 16384
    config = json.loads(r.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"])
    assert [a["name"] for a in config["applications"]] == ["fruit", "calc"]
    asg = r.one("aws:autoscaling/group:Group").inputs
    assert (asg["minSize"], asg["desiredCapacity"], asg["maxSize"]) == (1, 2, 4)
    assert asg["instanceRefresh"]["strategy"] == "Rolling"


def test_vm_user_config_change_updates_only_the_parameter_and_image_change_rolls():
    base = render(with_user_config(stack_values("vm"), 3), "vm")
    changed = render(with_user_config(stack_values("vm"), 9), "vm")
    assert user_data(base, "head") == user_data(changed, "head")
    assert user_data(base, "worker") == user_data(changed, "worker")
    assert base.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"] != \
        changed.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"]
    values = stack_values("vm")
    values["image"] = {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/apps:2.0.0"}
    new_image = render(values, "vm")
    assert user_data(new_image, "head") != user_data(base, "head")
    assert user_data(new_image, "worker") != user_data(base, "worker")
