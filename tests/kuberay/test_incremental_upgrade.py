"""KubeRay's NewClusterWithIncrementalUpgrade, rendered completely on both KubeRay platforms (kubernetes, eks dev):
`clusterUpgradeOptions` from `ray_service.incremental_upgrade`, no `serveService` (KubeRay serves through its own
Gateway and HTTPRoute then), the app URLs from that Gateway's address; checked against the v1.7.0 CRD with its CEL
rules and against the rules KubeRay v1.7.0's controller applies on top (ValidateClusterUpgradeOptions, written
out below from ray-operator/controllers/ray/utils/validation.go). Refused, one line each and nothing declared,
only where KubeRay cannot do it."""
from __future__ import annotations

import copy

import pytest

from rayserve_pulumi.kuberay.settings import INCREMENTAL_UPGRADE
from tests.config.test_bad_config import _expect_failure, _set
from tests.kuberay.test_rayservice_crd import crd_schema, errors
from tests.pulumi_harness import render, stack_values

OPTIONS = {"gateway_class": "eg", "step_size_percent": 25, "interval_s": 60, "max_surge_percent": 50}


def incremental(stack: str, **options) -> dict:
    """The stack with an incremental upgrade, gated as by default: metrics on, for the gate's Prometheus."""
    values = copy.deepcopy(stack_values(stack))
    values["ray_service"] = {**values["ray_service"], "upgrade_strategy": INCREMENTAL_UPGRADE,
                             "incremental_upgrade": {**OPTIONS, **options}}
    values["metrics"] = {**values.get("metrics", {}), "enabled": True}
    return values


def kuberay_rejects(spec: dict) -> list[str]:
    """KubeRay v1.7.0's ValidateRayServiceSpec for this strategy (validation.go), which the CRD does not carry."""
    upgrade = spec.get("upgradeStrategy") or {}
    if upgrade.get("type") != INCREMENTAL_UPGRADE:
        return []
    options = upgrade.get("clusterUpgradeOptions")
    if not spec["rayClusterConfig"].get("enableInTreeAutoscaling"):
        return ["Ray Autoscaler is required for NewClusterWithIncrementalUpgrade"]
    if options is None:
        return ["ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade"]
    surge, step = options.get("maxSurgePercent", 100), options.get("stepSizePercent")
    found = []
    if not 0 <= surge <= 100:
        found.append("maxSurgePercent must be between 0 and 100")
    if step is None or not 0 <= step <= 100:
        found.append("stepSizePercent must be between 0 and 100")
    elif step > surge:
        found.append("stepSizePercent must be less than or equal to maxSurgePercent")
    if not options.get("intervalSeconds") or options["intervalSeconds"] <= 0:
        found.append("intervalSeconds must be greater than 0")
    if not options.get("gatewayClassName"):
        found.append("gatewayClassName is required for NewClusterWithIncrementalUpgrade")
    return found


def manifest_of(declared) -> dict:
    service = declared.one("kubernetes:ray.io/v1:RayService")
    return {"apiVersion": "ray.io/v1", "kind": "RayService",
            **{k: v for k, v in service.inputs.items() if k not in ("apiVersion", "kind", "status")}}


@pytest.mark.parametrize("stack", ["kubernetes", "dev"])
def test_the_incremental_upgrade_renders_what_kuberay_needs(stack):
    declared = render(incremental(stack), stack)
    manifest = manifest_of(declared)
    spec = manifest["spec"]
    assert spec["upgradeStrategy"] == {"type": INCREMENTAL_UPGRADE, "clusterUpgradeOptions": {
        "gatewayClassName": "eg", "stepSizePercent": 25, "intervalSeconds": 60, "maxSurgePercent": 50}}
    assert "serveService" not in spec  # KubeRay ignores it under this strategy: the Gateway is the entry
    assert errors(crd_schema("ray.io_rayservices.yaml"), manifest) == []
    assert kuberay_rejects(spec) == []
    # the URLs are the Gateway's (KubeRay names it <name>-gateway and listens on 80), read after the RayService
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    assert ("kubernetes:gateway.networking.k8s.io/v1:Gateway", f"{namespace}/{name}-gateway") in declared.reads
    assert declared.outputs["app_urls"]["fruit"] == f"http://{name}-gateway.gateway.example:80/fruit"


def test_the_written_out_kuberay_rules_reject_what_kuberay_rejects():
    spec = manifest_of(render(incremental("kubernetes"), "kubernetes"))["spec"]
    options = spec["upgradeStrategy"]["clusterUpgradeOptions"]
    for broken, message in [({"stepSizePercent": 80}, "less than or equal to maxSurgePercent"),
                            ({"intervalSeconds": 0}, "intervalSeconds must be greater than 0"),
                            ({"gatewayClassName": ""}, "gatewayClassName is required")]:
        bad = {**spec, "upgradeStrategy": {**spec["upgradeStrategy"], "clusterUpgradeOptions": {**options, **broken}}}
        assert any(message in e for e in kuberay_rejects(bad)), broken
    no_autoscaler = {**spec, "rayClusterConfig": {**spec["rayClusterConfig"], "enableInTreeAutoscaling": False}}
    assert kuberay_rejects(no_autoscaler) == ["Ray Autoscaler is required for NewClusterWithIncrementalUpgrade"]


def test_other_strategies_keep_the_serve_service_and_no_gateway():
    declared = render(stack_values("kubernetes"), "kubernetes")
    assert manifest_of(declared)["spec"]["serveService"]["metadata"]["name"] == "rayserve-serve-svc"
    assert not [t for t, _ in declared.reads if t.endswith(":Gateway")]


BAD = [
    ("kubernetes", "ray_service.upgrade_strategy", INCREMENTAL_UPGRADE,
     "rayserve:ray_service: upgrade_strategy NewClusterWithIncrementalUpgrade needs incremental_upgrade.gateway_class"),
    ("kubernetes", "ray_service.incremental_upgrade", OPTIONS,
     "incremental_upgrade is for upgrade_strategy NewClusterWithIncrementalUpgrade"),
]
BAD_INCREMENTAL = [
    ("ray_service.incremental_upgrade.step_size_percent", 80, "step_size_percent 80 exceeds max_surge_percent 50"),
    ("ray_service.incremental_upgrade.step_size_percent", 0, "rayserve:ray_service.incremental_upgrade.step_size_percent:"),
    ("ray_service.incremental_upgrade.interval_s", 1.5, "rayserve:ray_service.incremental_upgrade.interval_s:"),
    ("ray_service.incremental_upgrade.max_surge_percent", 101, "rayserve:ray_service.incremental_upgrade.max_surge_percent:"),
    ("ray_service.incremental_upgrade.gateway_class", "Envoy_GW", "is not a DNS-1123 subdomain"),
    ("ray_service.incremental_upgrade.gateway_class", None, "rayserve:ray_service.incremental_upgrade.gateway_class:"),
    ("ray_service.enable_autoscaling", False, "needs enable_autoscaling true"),
    ("ray_service.service_type", "LoadBalancer", "KubeRay ignores spec.serveService"),
    ("kuberay.chart_version", "1.6.2", "kuberay.chart_version 1.6.2: upgrade_strategy NewClusterWithIncrementalUpgrade "
                                       "needs 1.7.0 or later"),
    # gated by default (kuberay.rollout_gate), which reads the stack's own Prometheus
    ("metrics.enabled", False, "NewClusterWithIncrementalUpgrade is gated by `rollout` (on by default), which reads "
                               "Serve's metrics from the stack's own Prometheus"),
    ("metrics.install_operator", False, "set metrics.enabled (with metrics.install_operator), or rollout.enabled: false"),
    ("rollout.steps", [50, 100], "rollout.steps: on KubeRay traffic moves by ray_service.incremental_upgrade"),
    ("rollout.max_p99_ratio", 0.5, "max_p99_ratio must be at least 1"),
]


@pytest.mark.parametrize("stack,path,value,expected", BAD, ids=[c[1] for c in BAD])
def test_half_an_incremental_upgrade_is_one_line(stack, path, value, expected, tmp_path, capsys):
    _expect_failure(_set(stack_values(stack), path, value), stack, expected, tmp_path, capsys)


@pytest.mark.parametrize("path,value,expected", BAD_INCREMENTAL, ids=[f"{c[0]}={c[1]!r}" for c in BAD_INCREMENTAL])
def test_what_kuberay_cannot_do_is_one_line_and_declares_nothing(path, value, expected, tmp_path, capsys):
    _expect_failure(_set(incremental("kubernetes"), path, value), "kubernetes", expected, tmp_path, capsys)


@pytest.mark.parametrize("stack", ["kubernetes", "dev"])
def test_the_package_installs_envoy_gateway_and_the_class_where_asked(stack):
    """Envoy Gateway's pinned chart in a restricted namespace, the GatewayClass owned by the controllerName the
    chart's values set, and the RayService after both (KubeRay's Gateway names the class)."""
    from rayserve_pulumi.constants import ENVOY_GATEWAY_CONTROLLER, ENVOY_GATEWAY_VERSION
    from tests.kuberay.test_pod_security import _restricted_namespaces

    plain = render(incremental(stack), stack)
    assert not [r for r in plain.resources if r.type == "rayserve:kuberay:EnvoyGateway"]
    r = render(incremental(stack, install_gateway_controller=True), stack)
    release = r.one("kubernetes:helm.sh/v3:Release", "envoy-gateway")
    assert (release.inputs["chart"], release.inputs["version"]) == ("oci://docker.io/envoyproxy/gateway-helm",
                                                                    ENVOY_GATEWAY_VERSION)
    assert release.inputs["namespace"] == "envoy-gateway-system" in _restricted_namespaces(r)
    controller = release.inputs["values"]["config"]["envoyGateway"]["gateway"]["controllerName"]
    cls = r.one("kubernetes:gateway.networking.k8s.io/v1:GatewayClass")
    assert cls.inputs["metadata"]["name"] == OPTIONS["gateway_class"]
    assert cls.inputs["spec"]["controllerName"] == controller == ENVOY_GATEWAY_CONTROLLER
    # the RayService component waits for the class (its dependencies: the EnvoyGateway's children)
    after = r.one("rayserve:kuberay:RayService").dependencies
    assert any(d.endswith(f"GatewayClass::{cls.name}") for d in after) and any(d.endswith(f"::{release.name}") for d in after)
