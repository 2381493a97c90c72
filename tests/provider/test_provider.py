"""The component provider for other languages: the schema Pulumi's host infers from the platforms' provider
components (checked in, and read for what a TypeScript or YAML user sees: types, descriptions, outputs), and the
components themselves under mocks. No Pulumi CLI here: `pulumi package add` and SDK generation are not run."""
from __future__ import annotations

import json

import pulumi
import pytest

from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.provider.schema import schema
from rayserve_pulumi.registry import provider_components
from tests.helpers import ROOT
from tests.pulumi_harness import Rendered, render, stack_values

CHECKED_IN = ROOT / "tests" / "provider" / "schema.json"


def test_the_generated_schema_is_the_checked_in_one():
    """A change to a provider component's args changes what other languages see: regenerate and review it
    (`python -m rayserve_pulumi.provider.schema > tests/provider/schema.json`)."""
    assert schema() == json.loads(CHECKED_IN.read_text())


def test_the_host_accepts_the_components():
    from pulumi.provider.experimental.component import ComponentProvider

    provider = ComponentProvider(provider_components(), "rayserve")  # what __main__ hosts: it analyzes them again
    assert sorted(provider._component_defs) == ["EksService", "KubernetesService", "VmService"]


@pytest.mark.parametrize("token,inputs", [
    ("rayserve:index:EksService", {"imageUri": "string", "vpcId": "string", "privateSubnetIds": "array",
                                   "publicSubnetIds": "array", "serveTlsCertificateArn": "string",
                                   "allowedCidrs": "array"}),
    ("rayserve:index:VmService", {"imageUri": "string", "vpcId": "string", "privateSubnetIds": "array",
                                  "publicSubnetIds": "array", "tlsCertificateArn": "string", "allowedCidrs": "array"}),
    ("rayserve:index:KubernetesService", {"image": "string", "kubeconfig": "string", "allowedCidrs": "array"}),
])
def test_what_other_languages_see(token, inputs):
    resource = schema()["resources"][token]
    assert resource["isComponent"] is True and resource["description"]
    assert resource["requiredInputs"] == ["config"]
    props = resource["inputProperties"]
    assert props["config"]["type"] == "object" and props["config"]["plain"] is True  # known before declaring
    assert props["config"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
    assert {k: v["type"] for k, v in props.items() if k != "config"} == inputs
    for name, prop in props.items():
        assert prop["description"], name
        if name != "config":
            assert not prop.get("plain"), f"{name} takes an Output (another resource's or stack's)"
        if prop["type"] == "array":
            assert prop["items"]["type"] == "string"
    assert not any("oneOf" in json.dumps(p) for p in props.values())  # no union the schema cannot express
    assert resource["properties"]["appUrls"]["additionalProperties"]["type"] == "string"
    assert resource["properties"]["dashboard"]["type"] == "string"
    assert all(p["description"] for p in resource["properties"].values())
    assert sorted(resource["required"]) == ["appUrls", "dashboard"]


def _config(stack: str) -> dict:
    return {k: v for k, v in stack_values(stack).items() if k != "platform"}


def test_a_provider_component_declares_its_platform_with_the_values_from_elsewhere():
    from rayserve_pulumi.kubernetes.service import KubernetesService

    config = _config("kubernetes")
    config["image"] = {}  # the image comes as an input instead
    image = "registry.example.com/apps@sha256:" + "12" * 32

    def program():
        svc = KubernetesService("serving", {"config": config, "image": pulumi.Output.from_input(image)})
        return {"app_urls": svc.app_urls, "dashboard": svc.dashboard}

    r = render({}, "k8s", program=program)
    platform = r.one("rayserve:kubernetes:KubernetesPlatform")
    assert platform.parent.endswith("rayserve:index:KubernetesService::serving")
    spec = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]
    assert spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == image
    assert sorted(r.outputs["app_urls"]) == ["calc", "fruit"] and r.outputs["dashboard"]


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c.update(image={}), "rayserve: platform kubernetes needs image.uri"),
    (lambda c: c.update(platform="eks"), "config.platform: this component declares the kubernetes platform"),
    (lambda c: c["ray_service"].update(namespace="Ray"), "rayserve:ray_service.namespace:"),
])
def test_a_bad_config_is_refused_before_anything_is_declared(mutate, expected):
    from rayserve_pulumi.kubernetes.service import KubernetesService

    config = _config("kubernetes")
    mutate(config)
    declared = Rendered()
    with pytest.raises(ConfigError) as info:
        render({}, "k8s", program=lambda: {"x": KubernetesService("serving", {"config": config}).app_urls},
               into=declared)
    assert expected in str(info.value)
    assert declared.resources == []
