"""Every stack in stacks/ rendered under Pulumi mocks, with real properties of what it declares."""
from __future__ import annotations

import copy
import json

import pytest
import yaml

from tests.pulumi_harness import all_stacks, mock_arn, render, stack_values

COMPONENT_PREFIX = "rayserve:index:"
TOP_LEVEL_OK = {"kubernetes:core/v1:Namespace"}  # the app namespace, shared by two components


@pytest.fixture(scope="module")
def rendered():
    return {stack: render(stack_values(stack), stack) for stack in all_stacks()}


def test_every_platform_has_a_stack():
    assert {stack_values(s)["platform"] for s in all_stacks()} == {"local", "eks", "vm"}


@pytest.mark.parametrize("stack", all_stacks())
def test_stack_renders_with_app_urls_and_components_own_their_children(rendered, stack):
    r = rendered[stack]
    assert r.resources, "nothing declared"
    assert r.outputs["platform"] == stack_values(stack)["platform"]
    for res in r.resources:
        if res.type.startswith(COMPONENT_PREFIX) or res.type in TOP_LEVEL_OK:
            continue
        assert COMPONENT_PREFIX in res.parent, f"{res.type} {res.name} is not parented to a component"
    if stack != "local":  # local URLs are computed by the provider at `up` time
        apps = stack_values(stack).get("serve", {}).get("applications") or ["fruit", "calc", "summarize_translate"]
        assert sorted(r.outputs["app_urls"]) == sorted(apps)
        assert r.outputs["app_urls"]["fruit"].endswith(":8000/fruit")


def test_local_stack_declares_the_provider_with_validated_config(rendered):
    r = rendered["local"]
    res = r.one("pulumi-python:dynamic:Resource")
    assert res.parent.endswith("LocalPlatform::rayserve")
    config = json.loads(res.inputs["serve_config_json"])
    assert [a["name"] for a in config["applications"]] == ["fruit", "calc", "summarize_translate"]
    assert res.inputs["dashboard_port"] == 8265 and res.inputs["host"] == "127.0.0.1"
    assert "__provider" in res.inputs  # the serialised LocalServeProvider


# ---- EKS -------------------------------------------------------------------------------------

def _rayservice(r):
    return r.one("kubernetes:ray.io/v1:RayService")


def test_dev_is_small_single_cpu_group_cluster_ip(rendered):
    r = rendered["dev"]
    groups = r.of_type("eks:index:ManagedNodeGroup")
    assert len(groups) == 1 and groups[0].inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert not groups[0].inputs.get("taints")
    spec = _rayservice(r).inputs["spec"]
    assert "gcsFaultToleranceOptions" not in spec["rayClusterConfig"]
    assert not r.of_type("kubernetes:core/v1:Service")
    assert r.outputs["app_urls"]["calc"] == "http://rayserve-dev-serve-svc.ray.svc.cluster.local:8000/calc"


def test_prod_has_cpu_and_gpu_groups_with_gpu_pods_placed_on_them(rendered):
    r = rendered["prod"]
    groups = {g.name.split("-")[-1]: g for g in r.of_type("eks:index:ManagedNodeGroup")}
    assert set(groups) == {"system", "cpu", "gpu"}
    gpu = groups["gpu"].inputs
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert gpu["labels"]["rayserve.io/node-group"] == "gpu"
    cluster = _rayservice(r).inputs["spec"]["rayClusterConfig"]
    worker = {w["groupName"]: w for w in cluster["workerGroupSpecs"]}
    gpu_pod = worker["gpu"]["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu_pod["nodeSelector"] == {"rayserve.io/node-group": "gpu"}
    assert gpu_pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "tolerations" not in worker["cpu"]["template"]["spec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["enableInTreeAutoscaling"] is True
    assert (worker["cpu"]["minReplicas"], worker["cpu"]["maxReplicas"]) == (2, 10)


def test_prod_gcs_fault_tolerance_uses_secret_redis_on_a_pvc(rendered):
    r = rendered["prod"]
    gcs = _rayservice(r).inputs["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert gcs["redisAddress"] == "rayserve-prod-ckpt-redis.ray.svc.cluster.local:6379"
    secret_ref = gcs["redisPassword"]["valueFrom"]["secretKeyRef"]
    secret = r.one("kubernetes:core/v1:Secret")
    assert secret_ref == {"name": secret.inputs["metadata"]["name"], "key": "password"}
    assert "password" not in json.dumps(_rayservice(r).inputs).replace('"key": "password"', "")
    assert secret.options["additional_secret_outputs"]  # stringData/data stored as secrets
    assert r.one("random:index/randomPassword:RandomPassword")
    sts = r.one("kubernetes:apps/v1:StatefulSet").inputs["spec"]
    claim = sts["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "gp3-encrypted" and claim["accessModes"] == ["ReadWriteOnce"]
    assert "--appendonly" in sts["template"]["spec"]["containers"][0]["args"]
    cache = r.one("kubernetes:core/v1:PersistentVolumeClaim")
    assert cache.inputs["spec"]["accessModes"] == ["ReadWriteMany"] and cache.options["retain_on_delete"]


def test_eks_storage_is_encrypted_gp3_through_the_ebs_csi_driver_with_irsa(rendered):
    r = rendered["prod"]
    gp3 = [s for s in r.of_type("kubernetes:storage.k8s.io/v1:StorageClass") if s.inputs["provisioner"] == "ebs.csi.aws.com"]
    assert gp3[0].inputs["parameters"] == {"type": "gp3", "encrypted": "true", "fsType": "ext4"}
    addon = [a for a in r.of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"][0]
    role = next(x for x in r.of_type("aws:iam/role:Role") if x.name.endswith("ebs-csi-role"))
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in json.dumps(trust["Condition"])
    assert addon.inputs["serviceAccountRoleArn"] == mock_arn(role.name)
    assert r.one("aws:efs/fileSystem:FileSystem").inputs["encrypted"] is True
    cluster = r.one("eks:index:Cluster").inputs
    assert cluster["createOidcProvider"] is True and cluster["skipDefaultNodeGroup"] is True
    assert cluster["nodeAssociatePublicIpAddress"] is False and cluster["encryptionConfigKeyArn"]


def test_kuberay_operator_chart_is_pinned_and_rayservice_waits_for_it(rendered):
    r = rendered["prod"]
    release = r.one("kubernetes:helm.sh/v3:Release").inputs
    assert (release["chart"], release["version"]) == ("kuberay-operator", "1.7.0")
    assert release["repositoryOpts"]["repo"] == "https://ray-project.github.io/kuberay-helm/"
    assert release["skipCrds"] is False
    component = r.one("rayserve:index:RayService")
    operator_urns = [d for d in component.dependencies if "KubeRayOperator" in d]
    assert operator_urns, "RayService must depend on the operator so destroy removes it first"


def test_prod_is_public_through_a_load_balancer_and_kubeconfig_is_secret(rendered):
    r = rendered["prod"]
    svc = r.one("kubernetes:core/v1:Service", "public").inputs["spec"]
    assert svc["type"] == "LoadBalancer"
    assert svc["selector"] == {"rayserve.io/service": "rayserve-prod", "ray.io/serve": "true"}
    assert r.outputs["app_urls"]["fruit"] == "http://rayserve-prod-rayservice-public.elb.us-west-2.amazonaws.com:8000/fruit"
    assert "kubeconfig" in r.secret_outputs
    assert "port-forward svc/rayserve-prod-head-svc" in r.outputs["dashboard_hint"]


def test_image_is_built_into_immutable_ecr_and_pinned_by_digest(rendered):
    r = rendered["prod"]
    repo = r.one("aws:ecr/repository:Repository").inputs
    assert repo["imageTagMutability"] == "IMMUTABLE" and repo["imageScanningConfiguration"]["scanOnPush"]
    build = r.one("docker-build:index:Image").inputs
    assert build["dockerfile"]["location"].endswith("serve_apps/Dockerfile")
    assert build["buildArgs"]["BASE_IMAGE"] == "rayproject/ray:2.60.0-py311-gpu"  # prod has GPU workers
    assert build["push"] is True
    assert r.outputs["image"].endswith("@sha256:" + "ab" * 32)
    image = _rayservice(r).inputs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert image == r.outputs["image"]


def test_prebuilt_image_declares_no_build():
    values = stack_values("dev")
    values["image"] = {"uri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps:2024.11.1"}
    r = render(values, "dev")
    assert not r.of_type("docker-build:index:Image") and not r.of_type("aws:ecr/repository:Repository")
    assert r.outputs["image"] == values["image"]["uri"]


def _with_user_config(values: dict, price: int) -> dict:
    values = copy.deepcopy(values)
    values.setdefault("serve", {}).setdefault("overrides", {}).setdefault("fruit", {})["MangoStand"] = {
        "user_config": {"price": price}}
    return values


def test_serve_config_only_change_leaves_the_ray_cluster_config_alone():
    before = _rayservice(render(_with_user_config(stack_values("prod"), 3), "prod")).inputs["spec"]
    after = _rayservice(render(_with_user_config(stack_values("prod"), 7), "prod")).inputs["spec"]
    assert before["serveConfigV2"] != after["serveConfigV2"]
    assert yaml.safe_load(after["serveConfigV2"])["applications"][0]["deployments"][1]["user_config"] == {"price": 7}
    assert before["rayClusterConfig"] == after["rayClusterConfig"]


def test_haproxy_ingress_reaches_every_platform():
    values = stack_values("prod")
    values["serve"] = {**values["serve"], "proxy": "haproxy"}
    pod = _rayservice(render(values, "prod")).inputs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert {"name": "RAY_SERVE_ENABLE_HA_PROXY", "value": "1"} in pod["containers"][0]["env"]
    values = stack_values("vm")
    values["serve"] = {**values["serve"], "proxy": "haproxy"}
    rendered_vm = render(values, "vm")
    assert "--serve-proxy haproxy" in _user_data(rendered_vm, "head") and "--serve-proxy haproxy" in _user_data(rendered_vm, "worker")
    values = {**stack_values("local"), "serve": {"proxy": "haproxy"}}
    assert render(values, "local").one("pulumi-python:dynamic:Resource").inputs["ray_env"] == {"RAY_SERVE_ENABLE_HA_PROXY": "1"}


# ---- VM --------------------------------------------------------------------------------------

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


def _user_data(r, kind: str) -> str:
    import base64
    if kind == "head":
        return r.one("aws:ec2/instance:Instance").inputs["userData"]
    return base64.b64decode(r.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"]).decode()


def test_vm_user_data_runs_the_bundled_bootstrap(rendered):
    r = rendered["vm"]
    head, worker = _user_data(r, "head"), _user_data(r, "worker")
    assert r.one("aws:ec2/instance:Instance").inputs["userDataReplaceOnChange"] is True
    assert "vm_bootstrap.py head --mode docker --image " + r.outputs["image"] in head
    assert "--config-ssm /rayserve-vm-vm/serve-config" in head and "--gcs-redis" in head
    assert "--auth-token-ssm /rayserve-vm-vm/ray-auth-token" in head and "--auth-token-ssm /rayserve-vm-vm/ray-auth-token" in worker
    token = r.one("aws:ssm/parameter:Parameter", "ray-auth-token")
    assert token.inputs["type"] == "SecureString" and token.inputs["value"].startswith("mock-password-")
    assert "vm_bootstrap.py worker --mode docker" in worker and "--head-address 10.20.1.10:6379" in worker
    assert "MangoStand" not in head  # the Serve config is not in user data
    assert len(head.encode()) < 16384
    config = json.loads(r.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"])
    assert [a["name"] for a in config["applications"]] == ["fruit", "calc"]
    asg = r.one("aws:autoscaling/group:Group").inputs
    assert (asg["minSize"], asg["desiredCapacity"], asg["maxSize"]) == (1, 2, 4)
    assert asg["instanceRefresh"]["strategy"] == "Rolling"


def test_vm_user_config_change_updates_only_the_parameter_and_image_change_rolls():
    base = render(_with_user_config(stack_values("vm"), 3), "vm")
    changed = render(_with_user_config(stack_values("vm"), 9), "vm")
    assert _user_data(base, "head") == _user_data(changed, "head")
    assert _user_data(base, "worker") == _user_data(changed, "worker")
    assert base.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"] != \
        changed.one("aws:ssm/parameter:Parameter", "serve-config").inputs["value"]
    values = stack_values("vm")
    values["image"] = {"uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/apps:2.0.0"}
    new_image = render(values, "vm")
    assert _user_data(new_image, "head") != _user_data(base, "head")
    assert _user_data(new_image, "worker") != _user_data(base, "worker")
