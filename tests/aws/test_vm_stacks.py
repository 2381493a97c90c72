"""The `vm` stack rendered under Pulumi mocks: security groups, IMDSv2, IAM, user data."""
from __future__ import annotations

import base64
import json
import shlex

from rayserve_pulumi.aws.vm.cluster import (ASSOCIATION_ACTIONS, DOCUMENT_ACTIONS, TARGET_HEALTH_ACTIONS,
                                            VOLUME_OF_THIS_HEAD,
                                             head_generation)
from rayserve_pulumi.node_agent import bootstrap
from rayserve_pulumi.rollout.settings import RolloutSettings
from tests.pulumi_harness import mock_arn, render, stack_values, user_data, with_user_config


def test_vm_serve_is_reached_through_a_tls_nlb_that_admits_only_allowed_cidrs(rendered):
    r = rendered["vm"]
    nlb = r.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert nlb["loadBalancerType"] == "network" and nlb["internal"] is False  # the stack asks for internet-facing
    listener = r.one("aws:lb/listener:Listener").inputs
    assert (listener["protocol"], listener["port"]) == ("TLS", 443)
    assert listener["certificateArn"] == stack_values("vm")["vm"]["tls_certificate_arn"]
    assert listener["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    tg = r.one("aws:lb/targetGroup:TargetGroup").inputs
    assert (tg["port"], tg["healthCheck"]["path"]) == (8000, "/-/healthz")
    assert r.one("aws:autoscaling/group:Group").inputs["targetGroupArns"] == [mock_arn(r.one("aws:lb/targetGroup:TargetGroup").name)]
    ingress = [i.inputs for i in r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")]
    public = [i for i in ingress if i.get("cidrIpv4")]
    assert sorted(i["cidrIpv4"] for i in public) == sorted(stack_values("vm")["vm"]["allowed_cidrs"])
    assert all((i["fromPort"], i["toPort"], i["ipProtocol"]) == (443, 443, "tcp") for i in public)
    by_sg = {i["securityGroupId"] for i in public}
    assert len(by_sg) == 1 and by_sg != {r.one("aws:ec2/instance:Instance").inputs["vpcSecurityGroupIds"][0]}  # the NLB's group
    nodes = [i for i in ingress if not i.get("cidrIpv4")]
    assert sorted((i.get("fromPort", 0), i["ipProtocol"]) for i in nodes) == [(0, "-1"), (8000, "tcp")]
    from_nlb = next(i for i in nodes if i["ipProtocol"] == "tcp")
    assert from_nlb["referencedSecurityGroupId"] == next(iter(by_sg))  # Serve's port only from the NLB
    assert not r.of_type("aws:ec2/eip:Eip")  # nothing has a public address of its own
    assert r.outputs["app_urls"]["fruit"].startswith("https://") and ":8000" not in r.outputs["app_urls"]["fruit"]


def test_vm_endpoint_is_internal_and_plain_tcp_unless_asked():
    values = stack_values("vm")
    values["vm"] = {k: v for k, v in values["vm"].items()
                    if k not in ("load_balancer_scheme", "allowed_cidrs", "tls_certificate_arn")}
    r = render(values, "vm")
    assert r.one("aws:lb/loadBalancer:LoadBalancer").inputs["internal"] is True
    listener = r.one("aws:lb/listener:Listener").inputs
    assert (listener["protocol"], listener["port"]) == ("TCP", 8000)
    sources = [i.inputs["cidrIpv4"] for i in r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if i.inputs.get("cidrIpv4")]
    assert sources == ["10.20.0.0/16"]  # the VPC only


def test_vm_instances_require_imdsv2_and_encrypt_every_volume(rendered):
    r = rendered["vm"]
    head = r.one("aws:ec2/instance:Instance").inputs
    lt = r.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    for meta in (head["metadataOptions"], lt["metadataOptions"]):
        assert meta["httpTokens"] == "required" and meta["httpPutResponseHopLimit"] == 1
    assert head["rootBlockDevice"]["encrypted"] is True
    assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    vol = r.one("aws:ebs/volume:Volume")
    assert vol.inputs["encrypted"] is True
    assert not vol.options["retain_on_delete"]  # a volume per head: retained, each new image would leave one behind
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
    assert not r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")  # no managed policy at all
    assert by_action["ssmmessages:OpenDataChannel"] == "*"  # Session Manager's channel (vm.ssm_session_access)
    documents = sorted(mock_arn(d.name) for d in r.of_type("aws:ssm/document:Document"))
    assert len(documents) == 2  # the new head's readiness and in-service checks
    assert {a: sorted(by_action[a]) for a in DOCUMENT_ACTIONS} == {a: documents for a in DOCUMENT_ACTIONS}
    assert {a: by_action[a] for a in TARGET_HEALTH_ACTIONS} == {a: "*" for a in TARGET_HEALTH_ACTIONS}  # no scope
    assert sorted(a for a in by_action if a.startswith("elasticloadbalancing:")) == TARGET_HEALTH_ACTIONS
    # besides reading its two parameters, the SSM agent's association actions and nothing else of SSM
    assert sorted(a for a in by_action if a.startswith("ssm:")) == sorted(
        ["ssm:GetParameter", *DOCUMENT_ACTIONS, *(a for a in ASSOCIATION_ACTIONS if a.startswith("ssm:"))])
    assert not [a for a in by_action if a.startswith(("ssm:Send", "ssm:Put", "ssm:Delete", "ssm:Create"))]
    values = stack_values("vm")
    values["vm"] = {**values["vm"], "ssm_session_access": False}
    off = json.loads(render(values, "vm").one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert not [a for st in off["Statement"] for a in st["Action"] if a.startswith("ssmmessages:")]


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
    assert "--block-imds" in head and "--block-imds" in worker  # no S3 bucket: the Ray containers need no credentials
    assert "password" not in head.lower() and "password" not in worker.lower()
    assert "MangoStand" not in head  # the Serve config is not in user data
    packed = base64.b64decode(r.one("aws:ec2/instance:Instance").inputs["userDataBase64"])
    assert packed[:2] == b"\x1f\x8b" and len(packed) < 16384  # gzip (cloud-init undoes it), under EC2's cap
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


def test_vm_metrics_run_on_the_heads_loopback_and_are_reached_through_session_manager(rendered):
    r = rendered["vm"]
    head = user_data(r, "head")
    assert "--metrics --scrape-interval 15 --prometheus-port 9090 --grafana-port 3000" in head
    assert "--metrics" not in user_data(r, "worker")
    for key, port in (("grafana", 3000), ("prometheus", 9090)):
        assert r.outputs[key].startswith("aws ssm start-session --target ") and f"portNumber={port}," in r.outputs[key]
    ports = [(i.inputs.get("fromPort"), i.inputs.get("toPort")) for i in
             r.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if i.inputs.get("cidrIpv4")]
    assert all(not (lo <= p <= hi) for lo, hi in ports for p in (3000, 9090))  # no CIDR reaches them


def test_vm_heads_sync_gates_a_config_whose_code_changed_by_the_stacks_rollout_settings(rendered):
    """The head's agent gets `rollout` as `--rollout` JSON, which its own parser takes and its sync timer keeps;
    `rollout.enabled: false` leaves it out (Serve rolls the replicas in place)."""
    def invocation(r) -> list[str]:
        return shlex.split([line for line in user_data(r, "head").splitlines() if line][-1])[3:]  # after -m module

    argv = invocation(rendered["vm"])
    assert RolloutSettings(**json.loads(argv[argv.index("--rollout") + 1])) == RolloutSettings()  # the defaults
    args = bootstrap.parser().parse_args(argv)
    assert bootstrap.sync_argv(args)[-2:] == ["--rollout", args.rollout]
    assert "--rollout" not in user_data(rendered["vm"], "worker")
    values = stack_values("vm")
    values["rollout"] = {"steps": [10, 100], "max_error_rate": 0.05}
    argv = invocation(render(values, "vm"))
    assert json.loads(argv[argv.index("--rollout") + 1]) == \
        RolloutSettings(steps=[10, 100], max_error_rate=0.05).model_dump(exclude={"enabled"})
    values["rollout"] = {"enabled": False}
    assert "--rollout" not in invocation(render(values, "vm"))


def _replaced(r) -> dict:
    """What Pulumi replaces the head and its checkpoint volume on: the head's AMI, subnet and user data
    (`user_data_replace_on_change`), but for the volume's own id; the volume's replacement trigger and inputs;
    the worker group's replacement trigger."""
    head, vol = r.one("aws:ec2/instance:Instance").inputs, r.one("aws:ebs/volume:Volume")
    script = user_data(r, "head").replace(f"--volume-id {vol.name}-id ", f"--volume-id {VOLUME_OF_THIS_HEAD} ")
    return {"head": (script, head["ami"], head["subnetId"]), "volume": (vol.options["replacement_trigger"], vol.inputs),
            "workers": r.one("aws:autoscaling/group:Group").options["replacement_trigger"]}


def test_vm_head_is_replaced_with_its_checkpoint_volume_never_onto_the_old_one():
    """A new head takes a new volume: the one volume stays attached to the old head until Pulumi deletes it at the
    end of the update, so attaching it to the new head fails (pulumi/pulumi-aws#2769), and every `up` that
    replaces the head (a new image, AMI or node setting) failed so."""
    values = {**stack_values("vm"), "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/apps:2.0.0"}}
    before = _replaced(render(values, "vm"))
    assert before["volume"][0] == head_generation(before["head"])  # the trigger is what replaces the head
    changes = {
        "a new image": {**values, "image": {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/apps:2.0.1"}},
        "a pinned AMI": {**values, "vm": {**values["vm"], "ami_id": "ami-0fedcba9876543210"}},
        "a node setting": {**values, "vm": {**values["vm"], "config_poll_seconds": 60}},
        "a user_config": with_user_config(values, 9),
    }
    replaced = {}
    for what, changed in changes.items():
        after = _replaced(render(changed, "vm"))
        replaced[what] = (after["head"] != before["head"], after["volume"] != before["volume"],
                          after["workers"] != before["workers"])
    # a new head is a new cluster: a new group of workers joins it beside the old one
    assert replaced == {"a new image": (True, True, True), "a pinned AMI": (True, True, True),
                        "a node setting": (True, True, True),
                        "a user_config": (False, False, False)}  # a Serve config change goes through SSM, in place
    assert before["workers"] == before["volume"][0]
    other_workers = {**values, "vm": {**values["vm"], "worker_instance_type": "m6i.4xlarge"}}
    assert _replaced(render(other_workers, "vm"))["workers"] == before["workers"]  # rolled in place instead


def test_the_old_vm_workers_go_only_once_the_new_ones_are_in_service(rendered):
    """Pulumi creates the new worker group before it deletes the old one at the end of the update; the group waits
    for its workers to be healthy behind the balancer, each up to vm.head_ready_timeout_s."""
    group = rendered["vm"].one("aws:autoscaling/group:Group").inputs
    assert group["waitForElbCapacity"] == 2 == stack_values("vm")["vm"]["worker_desired"]
    assert group["waitForCapacityTimeout"] == "1800s"


def _head_target(r, head_id: str):
    """The head's attachment to the Serve target group."""
    return next(a for a in r.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")
                if a.inputs["targetId"] == head_id)


def test_a_new_vm_head_takes_requests_and_workers_only_once_it_runs_every_application(rendered):
    """The workers roll onto a new head, and the old head goes, only after an SSM association on the new head
    succeeded (its check: test_the_head_ready_check_*); it is replaced with the head, so each new head is waited on."""
    r = rendered["vm"]
    head, ready = r.one("aws:ec2/instance:Instance"), r.one("aws:ssm/association:Association", "head-ready")
    head_id = f"{head.name}-id"  # the mocks' id
    assert ready.inputs["targets"] == [{"key": "InstanceIds", "values": [head_id]}]
    assert ready.options["replacement_trigger"] == head_id
    assert ready.inputs["waitForSuccessTimeoutSeconds"] == 1800  # vm.head_ready_timeout_s
    assert ready.inputs["name"] == r.one("aws:ssm/document:Document", "head-ready").inputs["name"] == \
        "rayserve-vm-vm-head-ready"
    after_ready = f"aws:ssm/association:Association::{ready.name}"
    assert [d for d in r.one("aws:ec2/launchTemplate:LaunchTemplate").dependencies  # workers roll after it
            if d.endswith(after_ready)]
    head_target = _head_target(r, head_id)  # the head takes requests only once it runs them all
    assert [d for d in head_target.dependencies if d.endswith(after_ready)]
    content = json.loads(r.one("aws:ssm/document:Document", "head-ready").inputs["content"])
    [step] = content["mainSteps"]
    assert step["action"] == "aws:runShellScript" and step["inputs"]["timeoutSeconds"] == "1800"
    assert "http://127.0.0.1:8000/-/healthz" in "\n".join(step["inputs"]["runCommand"])


def test_the_old_vm_head_goes_only_once_the_balancer_has_the_new_one_in_service(rendered):
    """Pulumi deletes a replaced head at the end of the update. A second association on the new head, after its
    target attachment, waits until the balancer reports it healthy (a new target takes requests only after its
    registration and health checks: minutes), so the update cannot end, and the old head cannot go, before."""
    r = rendered["vm"]
    head = r.one("aws:ec2/instance:Instance")
    head_id = f"{head.name}-id"
    attachment = _head_target(r, head_id)
    in_service = r.one("aws:ssm/association:Association", "head-in-service")
    assert in_service.inputs["targets"] == [{"key": "InstanceIds", "values": [head_id]}]
    assert in_service.options["replacement_trigger"] == head_id
    assert [d for d in in_service.dependencies if d.endswith(f"TargetGroupAttachment::{attachment.name}")]
    target_group = r.one("aws:lb/targetGroup:TargetGroup")
    assert in_service.inputs["parameters"] == {
        "Region": "us-west-2", "TargetGroupArn": mock_arn(target_group.name), "InstanceId": head_id,
        "Port": "8000"}
    assert in_service.inputs["waitForSuccessTimeoutSeconds"] > 1800  # the script's own deadline ends it first
    document = r.one("aws:ssm/document:Document", "head-in-service")
    assert in_service.inputs["name"] == document.inputs["name"]
    content = json.loads(document.inputs["content"])
    assert set(content["parameters"]) == set(in_service.inputs["parameters"])
    assert "deadline=$((SECONDS + 1800))" in content["mainSteps"][0]["inputs"]["runCommand"][0]  # vm.head_ready_timeout_s
