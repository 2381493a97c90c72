"""The `kubernetes` platform (an existing cluster, stacks/Pulumi.kubernetes.yaml) under Pulumi's mocks: what it
declares passes the KubeRay CRDs with their CEL rules (the official schemas and the policy pack run on it
with every other stack, tests/kuberay and tests/policy), it declares nothing AWS, it reaches the cluster by
the stack's kubeconfig and context or a provider of the caller's, and what it cannot do is one line."""
from __future__ import annotations

import copy

import pytest
import yaml

from rayserve_pulumi import cli
from rayserve_pulumi.config import ConfigError
from rayserve_pulumi.config.validate import validate_stack
from tests.kuberay.test_rayservice_crd import crd_schema, errors
from tests.pulumi_harness import ROOT, render, stack_values

STACK = ROOT / "stacks" / "Pulumi.kubernetes.yaml"
VALUES = stack_values("kubernetes")


def test_validate_and_render_work_on_the_stack(capsys):
    assert cli.main(["validate", str(STACK)]) == 0
    assert "valid kubernetes stack 'rayserve-k8s'" in capsys.readouterr().out
    assert cli.main(["render", str(STACK)]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert any(d.get("kind") == "RayService" for d in docs if isinstance(d, dict))


def test_it_declares_nothing_aws(rendered):
    types = {r.type for r in rendered["kubernetes"].resources}
    assert not {t for t in types if t.split(":")[0] in ("aws", "awsx", "eks", "docker-build")}, types
    assert "rayserve:kubernetes:KubernetesPlatform" in types and "rayserve:kuberay:KubeRayServe" in types


def test_the_rayservice_passes_the_crd_and_its_cel_rules(rendered):
    service = rendered["kubernetes"].one("kubernetes:ray.io/v1:RayService")
    manifest = {"apiVersion": "ray.io/v1", "kind": "RayService", **{k: v for k, v in service.inputs.items()
                                                                   if k not in ("apiVersion", "kind", "status")}}
    assert errors(crd_schema("ray.io_rayservices.yaml"), manifest) == []
    gcs = manifest["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert gcs["redisAddress"] == "rayserve-k8s-ckpt-redis.ray.svc.cluster.local:6379"  # GCS fault tolerance on


def test_gcs_redis_is_on_the_named_storage_class_behind_network_policies(rendered):
    r = rendered["kubernetes"]
    redis = r.one("kubernetes:apps/v1:StatefulSet")
    claim = redis.inputs["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "standard-rwo"
    policies = {p.inputs["metadata"]["name"] for p in r.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert {"rayserve-default-deny", "rayserve-ray-internal", "rayserve-redis-from-ray", "rayserve-serve"} <= policies


def test_the_cluster_is_the_kubeconfigs_context(rendered):
    provider = rendered["kubernetes"].one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == str(ROOT / "kubeconfig.yaml") and provider.inputs["context"] == "production"
    objects = [r for r in rendered["kubernetes"].resources if r.type.startswith("kubernetes:")]
    assert objects and all((r.options["provider"] or "").rsplit("::", 1)[0].endswith(f"::{provider.name}")
                           for r in objects), [(r.name, r.options["provider"]) for r in objects]


def test_an_operator_already_in_the_cluster_is_used():
    values = copy.deepcopy(VALUES)
    values["kubernetes"]["install_operator"] = False
    r = render(values, "kubernetes")
    assert not [h for h in r.of_type("kubernetes:helm.sh/v3:Release") if h.inputs["chart"] == "kuberay-operator"]
    assert r.of_type("kubernetes:ray.io/v1:RayService")


def test_a_component_user_passes_a_provider_of_their_own():
    """From another program: the cluster's provider built from another stack's kubeconfig output."""
    import pulumi
    import pulumi_kubernetes as k8s

    from rayserve_pulumi.config import RayServiceSettings, ServeSettings, build_serve_config
    from rayserve_pulumi.kubernetes import KubernetesPlatform, KubernetesPlatformArgs

    def program():
        other = pulumi.StackReference("team/clusters/prod")
        provider = k8s.Provider("prod-cluster", kubeconfig=other.get_output("kubeconfig"))
        platform = KubernetesPlatform("shop", KubernetesPlatformArgs(
            ray_service=RayServiceSettings(), serve_config=build_serve_config(ServeSettings(applications=["fruit"])),
            image="registry.example.com/shop/apps:v3", provider=provider))
        return platform.outputs()

    r = render({}, "user", program=program)
    providers = r.of_type("pulumi:providers:kubernetes")
    assert [p.name for p in providers] == ["prod-cluster"]  # the platform made none of its own
    assert r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert r.outputs["platform"] == "kubernetes" and sorted(r.outputs["app_urls"]) == ["fruit"]


@pytest.mark.parametrize("change, line", [
    (lambda v: v.update(image={"build": True}), "rayserve: platform kubernetes needs image.uri (a prebuilt image"),
    (lambda v: v.pop("kubernetes"), "rayserve: platform kubernetes needs a `kubernetes` section"),
    (lambda v: v["ray_service"].update(service_type="LoadBalancer",
                                       tls_certificate_arn="arn:aws:acm:us-west-2:123456789012:certificate/"
                                       "12345678-1234-1234-1234-123456789012"),
     "rayserve:ray_service.tls_certificate_arn: Extra inputs are not permitted"),
    (lambda v: v["ray_service"]["head"].update(node_group="cpu"), "rayserve: ray_service node_group names an EKS node"),
    (lambda v: v["ray_service"]["checkpoint"].update(model_cache_gi=50),
     "rayserve: ray_service.checkpoint.model_cache_gi needs kubernetes.model_cache_storage_class"),
    (lambda v: v["kubernetes"].update(storage_class="Fast_SSD"), "rayserve:kubernetes.storage_class: "),
    (lambda v: v["kubernetes"].update(service_annotations={"not a key!": "x"}),
     "rayserve:kubernetes.service_annotations: "),
], ids=["image.build", "no section", "ACM certificate", "node_group", "model cache", "storage class", "annotation"])
def test_what_it_cannot_do_is_one_line(change, line):
    values = copy.deepcopy(VALUES)
    change(values)
    with pytest.raises(ConfigError) as caught:
        validate_stack(values, ROOT)
    assert len(caught.value.lines) == 1 and caught.value.lines[0].startswith(line), caught.value.lines


def test_status_gives_the_kubectl_commands_for_the_context(capsys):
    assert cli.main(["status", str(STACK)]) == 0
    out = capsys.readouterr().out
    assert "kubectl --kubeconfig kubeconfig.yaml --context production -n ray get rayservice rayserve" in out


def _with_inputs(kubeconfig, image):
    """KubernetesPlatform with the kubeconfig and the image as Outputs (another stack's), the rest the stack's."""
    import pulumi

    from rayserve_pulumi.kubernetes import KubernetesPlatform, KubernetesPlatformArgs

    cfg, serve_config = validate_stack(VALUES, ROOT)

    def program():
        platform = KubernetesPlatform("k8s", KubernetesPlatformArgs(
            ray_service=cfg.ray_service, serve_config=serve_config, image=pulumi.Output.from_input(image),
            settings=cfg.kubernetes, kubeconfig=pulumi.Output.secret(kubeconfig)))
        return {"app_urls": platform.app_urls}
    return program


def test_kubeconfig_and_image_from_another_stack_are_used_once_checked():
    kubeconfig = yaml.safe_dump({"apiVersion": "v1", "clusters": [{"name": "c", "cluster": {"server": "https://k"}}]})
    image = "registry.example.com/apps@sha256:" + "ef" * 32
    r = render({}, "k8s", program=_with_inputs(kubeconfig, image))
    provider = r.one("pulumi:providers:kubernetes").inputs
    assert provider["kubeconfig"] == kubeconfig
    spec = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]
    assert spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize("kubeconfig,image,expected", [
    ("clusters: [", "registry.example.com/apps:1.0.0", "kubeconfig: not YAML"),
    ("apiVersion: v1", "registry.example.com/apps:1.0.0", "kubeconfig: a kubeconfig names its clusters"),
    ("clusters: [{name: c}]", "registry.example.com/apps:latest", "image:"),
])
def test_a_bad_kubeconfig_or_image_from_another_stack_fails_naming_the_arg(kubeconfig, image, expected):
    with pytest.raises(Exception) as info:
        render({}, "k8s", program=_with_inputs(kubeconfig, image))
    assert expected in str(info.value), str(info.value)[-500:]
