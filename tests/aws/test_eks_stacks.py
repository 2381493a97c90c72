"""The `dev` and `prod` EKS stacks rendered under Pulumi mocks, with real properties of what they declare."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from rayserve_pulumi.config import ConfigError
from tests.pulumi_harness import mock_arn, render, stack_values, with_user_config


def _rayservice(r):
    return r.one("kubernetes:ray.io/v1:RayService")


def test_dev_is_small_single_cpu_group_cluster_ip(rendered):
    r = rendered["dev"]
    groups = r.of_type("eks:index:ManagedNodeGroup")
    assert len(groups) == 1 and groups[0].inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert not groups[0].inputs.get("taints")
    spec = _rayservice(r).inputs["spec"]
    assert "gcsFaultToleranceOptions" not in spec["rayClusterConfig"]
    assert spec["serveService"]["spec"]["type"] == "ClusterIP"
    assert r.outputs["app_urls"]["calc"] == "http://rayserve-dev-serve-svc.ray.svc.cluster.local:8000/calc"


def _with_managed_gpu_group() -> dict:
    """prod with a managed GPU group (no Karpenter) for its GPU workers."""
    values = stack_values("prod")
    values["eks"] = {**values["eks"], "karpenter": None, "node_groups": [
        *values["eks"]["node_groups"],
        {"name": "cpu", "instance_types": ["m6i.2xlarge"], "min_size": 2, "desired_size": 2, "max_size": 10},
        {"name": "gpu", "instance_types": ["g5.xlarge"], "min_size": 1, "desired_size": 1, "max_size": 4, "gpu": True}]}
    return values


def test_a_managed_gpu_group_gets_the_nvidia_ami_taint_and_label():
    r = render(_with_managed_gpu_group(), "prod")
    groups = {g.name.split("-")[-1]: g for g in r.of_type("eks:index:ManagedNodeGroup")}
    assert set(groups) == {"system", "cpu", "gpu"}
    gpu = groups["gpu"].inputs
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA" and groups["cpu"].inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert gpu["labels"]["rayserve.io/node-group"] == "gpu"
    assert not r.of_type("rayserve:aws:Karpenter")
    plugin = r.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").inputs
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in plugin["values"]["tolerations"]
    assert plugin["values"]["nodeSelector"].items() <= gpu["labels"].items()


def test_prod_places_gpu_pods_on_the_gpu_pool(rendered):
    r = rendered["prod"]
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
    secret = r.one("kubernetes:core/v1:Secret", "redis-auth")
    assert secret_ref == {"name": secret.inputs["metadata"]["name"], "key": "password"}
    assert "password" not in json.dumps(_rayservice(r).inputs).replace('"key": "password"', "")
    assert secret.options["additional_secret_outputs"]  # stringData/data stored as secrets
    assert r.one("random:index/randomPassword:RandomPassword", "redis-password")
    sts = r.one("kubernetes:apps/v1:StatefulSet").inputs["spec"]
    claim = sts["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "gp3-encrypted" and claim["accessModes"] == ["ReadWriteOnce"]
    redis = sts["template"]["spec"]["containers"][0]
    assert redis["args"] == ["/etc/redis/redis.conf"]  # password, appendonly: in the file from the Secret
    conf = secret.inputs["stringData"]["redis.conf"]
    assert "appendonly yes" in conf and f"requirepass {secret.inputs['stringData']['password']}" in conf
    assert "password" not in json.dumps([redis["args"], redis["readinessProbe"]]).lower()
    assert redis["env"] == [{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {
        "name": secret.inputs["metadata"]["name"], "key": "password"}}}]
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
    release = r.one("kubernetes:helm.sh/v3:Release", "kuberay").inputs
    assert (release["chart"], release["version"]) == ("kuberay-operator", "1.7.0")
    assert release["repositoryOpts"]["repo"] == "https://ray-project.github.io/kuberay-helm/"
    assert release["skipCrds"] is True  # the CRDs are resources of their own (a chart bump upgrades them)
    crds = [c.inputs["file"] for c in r.of_type("kubernetes:yaml/v2:ConfigFile") if "crd" in c.name]
    assert sorted(crds) == [f"https://raw.githubusercontent.com/ray-project/kuberay/v1.7.0/ray-operator/config/crd/"
                            f"bases/ray.io_{crd}.yaml" for crd in ("rayclusters", "rayjobs", "rayservices")]
    assert any("crd-rayservices" in d for d in r.one("kubernetes:helm.sh/v3:Release", "kuberay").dependencies)
    # the operator watches the RayService's namespace only, with Roles there rather than a ClusterRole
    assert release["values"]["watchNamespace"] == [stack_values("prod")["ray_service"]["namespace"]]
    assert release["values"]["singleNamespaceInstall"] is True
    component = r.one("rayserve:kuberay:RayService")
    operator_urns = [d for d in component.dependencies if "KubeRayOperator" in d]
    assert operator_urns, "RayService must depend on the operator so destroy removes it first"


def test_prod_serves_through_the_internal_nlb_kuberay_manages_built_by_the_load_balancer_controller(rendered):
    r = rendered["prod"]
    spec = _rayservice(r).inputs["spec"]
    serve_svc = spec["serveService"]
    assert serve_svc["metadata"]["name"] == "rayserve-prod-serve-svc" and serve_svc["spec"]["type"] == "LoadBalancer"
    assert "selector" not in serve_svc["spec"]  # KubeRay points it at the cluster that serves
    annotations = serve_svc["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    # the AWS Load Balancer Controller's (the legacy in-tree one leaves `external` alone): IP targets, no NodePort
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    lbc = r.one("kubernetes:helm.sh/v3:Release", "lb-controller").inputs
    assert (lbc["chart"], lbc["namespace"]) == ("aws-load-balancer-controller", "kube-system")
    assert re.fullmatch(r"\d+\.\d+\.\d+", lbc["version"]) and lbc["values"]["enableBackendSecurityGroup"] is True
    role = r.one("aws:iam/role:Role", "lb-controller-role").inputs["assumeRolePolicy"]
    assert "system:serviceaccount:kube-system:aws-load-balancer-controller" in role
    assert lbc["values"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("lb-controller-role")
    policy = json.loads(r.one("aws:iam/policy:Policy", "lb-controller").inputs["policy"])
    actions = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {"elasticloadbalancing:CreateLoadBalancer", "ec2:AuthorizeSecurityGroupIngress"} <= actions
    assert any("lb-controller" in d for d in r.one("rayserve:kuberay:KubeRayServe").dependencies)
    assert not [x for x in rendered["dev"].of_type("kubernetes:helm.sh/v3:Release") if "lb-controller" in x.name]
    assert spec["excludeHeadPodFromServeSvc"] is True
    # the URL is the live Service's load balancer, read after the RayService is Ready
    assert r.outputs["app_urls"]["fruit"] == "http://rayserve-prod-serve-svc.elb.us-west-2.amazonaws.com:8000/fruit"
    assert r.outputs["app_status"] == {"fruit": "RUNNING", "calc": "RUNNING", "summarize_translate": "RUNNING"}
    assert "kubeconfig" in r.secret_outputs
    assert "port-forward svc/rayserve-prod-head-svc" in r.outputs["dashboard"]


def test_internet_facing_needs_source_ranges_and_renders_them():
    values = stack_values("prod")
    values["ray_service"] = {**values["ray_service"], "load_balancer_scheme": "internet-facing",
                             "allowed_cidrs": ["203.0.113.0/24"]}
    svc = _rayservice(render(values, "prod")).inputs["spec"]["serveService"]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert "service.beta.kubernetes.io/aws-load-balancer-internal" not in svc["metadata"]["annotations"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_pulumi_managed_service_selects_ray_pods(rendered, stack):
    for svc in rendered[stack].of_type("kubernetes:core/v1:Service"):
        selector = (svc.inputs.get("spec") or {}).get("selector") or {}
        assert not [k for k in selector if k.startswith(("ray.io/", "rayserve.io/"))], (svc.name, selector)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pulumi_up_waits_for_ready_with_no_upgrade_in_progress_and_every_app_running(rendered, stack):
    annotations = _rayservice(rendered[stack]).inputs["metadata"]["annotations"]
    apps = [a["name"] for a in yaml.safe_load(_rayservice(rendered[stack]).inputs["spec"]["serveConfigV2"])["applications"]]
    assert json.loads(annotations["pulumi.com/waitFor"]) == [
        "condition=Ready", "condition=UpgradeInProgress=False",
        *(f"jsonpath={{.status.activeServiceStatus.applicationStatuses.{app}.status}}=RUNNING" for app in apps)]
    timeout = stack_values(stack)["ray_service"].get("ready_timeout_s", 1800)
    assert annotations["pulumi.com/timeoutSeconds"] == str(timeout)
    values = stack_values(stack)
    values["ray_service"] = {**values["ray_service"], "ready_timeout_s": 900}
    assert _rayservice(render(values, stack)).inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "900"


def test_dev_urls_work_from_inside_the_cluster_and_through_a_port_forward(rendered):
    out = rendered["dev"].outputs
    assert out["app_urls"]["fruit"] == "http://rayserve-dev-serve-svc.ray.svc.cluster.local:8000/fruit"
    assert out["serve_port_forward"].startswith("kubectl -n ray port-forward svc/rayserve-dev-serve-svc 8000:8000")
    assert "http://127.0.0.1:8000/fruit" in out["serve_port_forward"]
    assert set(out["app_status"]) == {"fruit", "calc", "summarize_translate"}


@pytest.mark.parametrize("strategy", ["NewCluster", "None", "NewClusterWithIncrementalUpgrade"])
def test_each_upgrade_strategy_renders_what_kuberay_needs_or_is_refused(strategy):
    values = stack_values("prod")
    values["ray_service"] = {**values["ray_service"], "upgrade_strategy": strategy}
    if strategy == "NewClusterWithIncrementalUpgrade":  # prod's Serve NLB is spec.serveService, which KubeRay ignores
        values["ray_service"]["incremental_upgrade"] = {"gateway_class": "eg"}  # then (tests/kuberay: dev renders it)
        with pytest.raises(ConfigError, match="rayserve:ray_service: upgrade_strategy NewClusterWithIncrementalUpgrade "
                                              "serves through the Gateway"):
            render(values, "prod")
        return
    spec = _rayservice(render(values, "prod")).inputs["spec"]
    assert spec["upgradeStrategy"] == {"type": strategy}  # KubeRay needs nothing more for these two


def test_prod_is_schedulable_after_eks_reservations():
    from rayserve_pulumi.config import parse_stack_config
    from rayserve_pulumi.config.checks import eks_fit_errors

    cfg = parse_stack_config(stack_values("prod"))
    assert eks_fit_errors(cfg) == []
    head, system = cfg.ray_service.head, cfg.eks.group("system")
    cpu, memory, _ = system.pod_room()
    assert head.millicpu <= cpu and head.memory_mib <= memory


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


def test_serve_config_only_change_leaves_the_ray_cluster_config_alone():
    before = _rayservice(render(with_user_config(stack_values("prod"), 3), "prod")).inputs["spec"]
    after = _rayservice(render(with_user_config(stack_values("prod"), 7), "prod")).inputs["spec"]
    assert before["serveConfigV2"] != after["serveConfigV2"]
    assert yaml.safe_load(after["serveConfigV2"])["applications"][0]["deployments"][1]["user_config"] == {"price": 7}
    assert json.dumps(before["rayClusterConfig"], sort_keys=True) == json.dumps(after["rayClusterConfig"], sort_keys=True)
    values = stack_values("prod")
    values["image"] = {"uri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps:2.0.0"}
    new_image = _rayservice(render(values, "prod")).inputs["spec"]
    assert new_image["rayClusterConfig"] != before["rayClusterConfig"]  # an image change rolls a new cluster


def test_an_external_redis_replaces_the_deployed_one():
    values = stack_values("prod")
    values["ray_service"] = {**values["ray_service"], "checkpoint": {
        "gcs_fault_tolerance": True, "external_redis": {"address": "rediss://my-redis.example.internal:6379",
                                                        "password_secret": "elasticache-auth", "password_key": "token"}}}
    r = render(values, "prod")
    assert not r.of_type("kubernetes:apps/v1:StatefulSet")
    assert not [x for x in r.of_type("kubernetes:core/v1:Secret") if "redis" in x.name]
    gcs = _rayservice(r).inputs["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert gcs == {"redisAddress": "rediss://my-redis.example.internal:6379",
                   "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "elasticache-auth", "key": "token"}}}}


def test_gpu_nodes_get_the_nvidia_device_plugin_and_cpu_only_clusters_none(rendered):
    plugin = rendered["prod"].one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").inputs
    assert plugin["chart"] == "nvidia-device-plugin" and re.fullmatch(r"\d+\.\d+\.\d+", plugin["version"])
    assert plugin["values"]["nodeSelector"] == {"rayserve.io/accelerator": "nvidia"}  # the GPU nodes' label
    pool = rendered["prod"].one("kubernetes:karpenter.sh/v1:NodePool", "gpu-pool").inputs["spec"]["template"]
    assert pool["metadata"]["labels"]["rayserve.io/accelerator"] == "nvidia"
    taint = pool["spec"]["taints"][0]
    assert {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]} in plugin["values"]["tolerations"]
    assert not [r for r in rendered["dev"].of_type("kubernetes:helm.sh/v3:Release") if "nvidia" in r.name]


def test_the_model_cache_is_reachable_from_the_security_group_the_nodes_carry(rendered):
    """EFS admits NFS from the EKS cluster security group, which EKS attaches to managed nodes whose launch
    template names none (ours) and so to their pods (VPC CNI): the old rendering admitted pulumi-eks' node
    group, which is attached to no managed node."""
    from rayserve_pulumi.preview import EKS_CLUSTER_SG

    r = rendered["prod"]
    assert r.one("eks:index:Cluster").inputs["skipDefaultSecurityGroups"] is True
    assert all("vpcSecurityGroupIds" not in lt.inputs for lt in r.of_type("aws:ec2/launchTemplate:LaunchTemplate"))
    efs = r.one("aws:ec2/securityGroup:SecurityGroup", "efs-sg").inputs
    assert efs["ingress"] == [{"protocol": "tcp", "fromPort": 2049, "toPort": 2049, "securityGroups": [EKS_CLUSTER_SG]}]
