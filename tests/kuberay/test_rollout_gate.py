"""The rollout gate as the KubeRay platforms declare it (kuberay.rollout_gate): an incremental upgrade is gated by
default; the RayService carries its spec's version and `pulumi up` waits for the gate to promote it; the gate's
objects pass Kubernetes' schemas, the restricted Pod Security profile and every policy of the pack, reach only this
RayService through a namespaced Role, and, where egress is contained, reach the API server and Prometheus and
nothing else; the code its ConfigMap carries runs by itself."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from rayserve_pulumi.constants import PROMETHEUS_PORT, ROLLOUT_VERDICT_ANNOTATION, SPEC_VERSION_ANNOTATION
from rayserve_pulumi.kuberay.rollout_gate import PROMETHEUS_LABELS, gate_labels
from rayserve_pulumi.platform_spec import k8s_manifest
from rayserve_pulumi.rollout.kuberay_gate import PROMOTED
from rayserve_pulumi.rollout.settings import RolloutSettings
from tests.kuberay.test_incremental_upgrade import incremental
from tests.kuberay.test_k8s_schemas import k8s_version, schema_errors
from tests.kuberay.test_pod_security import restricted_violations
from tests.policy.test_policy import CHECKS, STACK_CHECKS, stack_violations, violations
from tests.pulumi_harness import render, stack_values

GATE_TYPE = "rayserve:kuberay:RolloutGate"


def _gate_objects(r) -> list:
    [gate] = r.of_type(GATE_TYPE)
    return [res for res in r.resources if res.parent.endswith(f"::{gate.name}") and res.type.startswith("kubernetes:")]


def _annotations(r) -> dict:
    return r.one("kubernetes:ray.io/v1:RayService").inputs["metadata"]["annotations"]


@pytest.fixture(scope="module")
def gated():
    return {stack: render(incremental(stack), stack) for stack in ("kubernetes", "dev")}


@pytest.mark.parametrize("stack", ["kubernetes", "dev"])
def test_an_incremental_upgrade_is_gated_and_up_waits_for_the_gates_verdict(gated, stack):
    r = gated[stack]
    annotations = _annotations(r)
    version = annotations[SPEC_VERSION_ANNOTATION]
    wait = json.loads(annotations["pulumi.com/waitFor"])
    assert f"jsonpath={{.metadata.annotations['{ROLLOUT_VERDICT_ANNOTATION}']}}={PROMOTED}{version}" in wait
    assert annotations["pulumi.com/patchForce"] == "true"  # Pulumi takes back what a rollback wrote
    deployment = r.one("kubernetes:apps/v1:Deployment", "rollout-gate")
    [container] = deployment.inputs["spec"]["template"]["spec"]["containers"]
    image = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]["headGroupSpec"][
        "template"]["spec"]["containers"][0]["image"]
    assert container["image"] == image  # the Serve image's Python runs it
    args = dict(zip(container["command"][3::2], container["command"][4::2]))
    assert args["--rayservice"] == stack_values(stack)["ray_service"]["name"]
    assert args["--prometheus"].endswith(f".{stack_values(stack).get('metrics', {}).get('namespace', 'monitoring')}"
                                         f".svc:{PROMETHEUS_PORT}")
    assert json.loads(args["--thresholds"]) == {**RolloutSettings().thresholds().__dict__}


def test_the_version_follows_the_spec():
    values = incremental("kubernetes")
    again = render(copy.deepcopy(values), "kubernetes")
    values["image"] = {"uri": "registry.example.com/team/rayserve-apps:v1.4.3"}
    changed = render(values, "kubernetes")
    first = render(incremental("kubernetes"), "kubernetes")
    assert _annotations(first)[SPEC_VERSION_ANNOTATION] == _annotations(again)[SPEC_VERSION_ANNOTATION]
    assert _annotations(first)[SPEC_VERSION_ANNOTATION] != _annotations(changed)[SPEC_VERSION_ANNOTATION]


@pytest.mark.parametrize("values", [
    pytest.param(lambda: {**incremental("kubernetes"), "rollout": {"enabled": False}}, id="rollout-off"),
    pytest.param(lambda: stack_values("kubernetes"), id="new-cluster"),
])
def test_an_ungated_rayservice_waits_for_kuberay_alone(values):
    r = render(values(), "kubernetes")
    assert r.of_type(GATE_TYPE) == []
    annotations = _annotations(r)
    assert SPEC_VERSION_ANNOTATION not in annotations and "pulumi.com/patchForce" not in annotations
    assert ROLLOUT_VERDICT_ANNOTATION not in annotations["pulumi.com/waitFor"]


@pytest.mark.parametrize("stack", ["kubernetes", "dev"])
def test_the_gates_objects_pass_the_schemas_the_restricted_profile_and_every_policy(gated, stack):
    r = gated[stack]
    objects = _gate_objects(r)
    assert {o.type.rsplit(":", 1)[1] for o in objects} >= {"ServiceAccount", "Role", "RoleBinding", "ConfigMap",
                                                           "Deployment"}
    assert [e for o in objects for e in schema_errors(k8s_manifest(o), k8s_version(stack))] == []
    pod = r.one("kubernetes:apps/v1:Deployment", "rollout-gate").inputs["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    found = [(res.type, res.name, msg) for res in r.resources for name in CHECKS
             for msg in violations(name, res.type, res.inputs)]
    found += [(name, msg) for name in STACK_CHECKS
              for msg in stack_violations(name, [(res.type, res.name, res.inputs) for res in r.resources])]
    assert found == []


def test_the_gate_reaches_only_its_rayservice_its_configmap_and_events(gated):
    r = gated["kubernetes"]
    assert not [c for c in r.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
                if "rollout-gate" in c.name]
    role = r.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "rollout-gate")
    rules = {(tuple(rule["apiGroups"]), tuple(rule["resources"])): rule for rule in role.inputs["rules"]}
    assert rules[(("ray.io",), ("rayservices",))]["resourceNames"] == ["rayserve"]
    assert rules[(("",), ("configmaps",))]["resourceNames"] == ["rayserve-last-good"]
    assert rules[(("",), ("events",))]["verbs"] == ["create"]
    for rule in rules.values():
        assert set(rule["verbs"]) <= {"get", "patch", "create"} and "*" not in rule["resources"]
    binding = r.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "rollout-gate")
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": "rayserve-rollout-gate", "namespace": "ray"}]


def test_with_contained_egress_the_gate_reaches_the_api_server_and_prometheus_only(gated):
    from tests.wiring import Endpoint, from_rendered

    r = gated["kubernetes"]
    values = stack_values("kubernetes")
    net = from_rendered(r)
    api_ip = values["kubernetes"]["api_server_cidrs"][0].split("/")[0]
    gate = Endpoint("gate", "10.1.0.5", namespace="ray", labels=gate_labels("rayserve"))
    world = {
        "api": Endpoint("api server", api_ip),
        "prometheus": Endpoint("prometheus", "10.1.0.6", namespace="monitoring", labels=dict(PROMETHEUS_LABELS)),
        "head": Endpoint("head", "10.1.0.7", namespace="ray", labels={"rayserve.io/service": "rayserve",
                                                                      "ray.io/node-type": "head"}),
        "grafana": Endpoint("grafana", "10.1.0.8", namespace="monitoring", labels={"app.kubernetes.io/name": "grafana"}),
        "internet": Endpoint("the internet", "198.18.0.1"),
    }
    assert net.allows(gate, world["api"], 443) and net.allows(gate, world["prometheus"], PROMETHEUS_PORT)
    for name, port in (("head", 8265), ("grafana", 3000), ("internet", 443), ("api", 6443)):
        assert not net.allows(gate, world[name], port), name
    assert not net.allows(world["head"], gate, 8080)  # nothing reaches the gate


def test_the_code_its_configmap_carries_runs_by_itself(gated, tmp_path):
    """Laid out as the Deployment mounts it, with no site-packages (no installed rayserve_pulumi to fall back on)."""
    r = gated["kubernetes"]
    code = next(c for c in r.of_type("kubernetes:core/v1:ConfigMap") if c.name.endswith("rollout-gate-code"))
    pod = r.one("kubernetes:apps/v1:Deployment", "rollout-gate").inputs["spec"]["template"]["spec"]
    [volume] = pod["volumes"]
    for item in volume["configMap"]["items"]:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code.inputs["data"][item["key"]])
    [container] = pod["containers"]
    env = {e["name"]: e["value"].replace(container["workingDir"], str(tmp_path)) for e in container["env"]}
    run = subprocess.run([sys.executable, "-S", "-c", "import rayserve_pulumi.rollout.kuberay_gate as g, sys; "
                          "g.main(sys.argv[1:])", "--help"], cwd=tmp_path, env={**env, "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--thresholds" in run.stdout, run.stderr
    where = subprocess.run([sys.executable, "-S", "-c", "import rayserve_pulumi.rollout.kuberay_gate as g; "
                            "print(g.__file__)"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(tmp_path / "rayserve_pulumi/rollout/kuberay_gate.py"), where.stderr


def test_on_eks_the_gates_connections_pass_the_security_groups_and_the_policies(gated):
    from tests.aws.test_wiring import eks_world
    from tests.wiring import Endpoint

    net, w, _ = eks_world("dev", rendered=gated["dev"])
    name = stack_values("dev")["ray_service"]["name"]
    gate = Endpoint("gate", "10.0.0.50", set(w["head"].groups), "ray", gate_labels(name))
    prometheus = Endpoint("prometheus", w["prometheus"].ip, set(w["prometheus"].groups), "monitoring",
                          dict(PROMETHEUS_LABELS))
    assert net.allows(gate, w["api"], 443) and net.allows(gate, prometheus, PROMETHEUS_PORT)
    assert net.allows(gate, w["dns"], 53, "udp")
    for other, port in ((w["head"], 8265), (w["internet"], 443), (w["ecr"], 443), (w["stranger"], 8080)):
        assert not net.allows(gate, other, port), other.name
    assert not net.allows(w["stranger"], gate, 8080)


def test_a_component_user_without_the_stacks_prometheus_gets_one_line_and_nothing_declared():
    from rayserve_pulumi.config.errors import ConfigError
    from rayserve_pulumi.config.validate import validate_stack
    from rayserve_pulumi.kuberay.serving import KubeRayServe, KubeRayServeArgs
    from tests.helpers import ROOT

    cfg, serve_config = validate_stack(incremental("kubernetes"), ROOT)
    declared = []

    def program():
        try:
            KubeRayServe("serving", KubeRayServeArgs(ray_service=cfg.ray_service, serve_config=serve_config,
                                                     image="registry.example.com/apps:1.0.0"))  # metrics: off
        except ConfigError as exc:
            declared.append(str(exc))
        return {}

    r = render({}, "k8s", program=program)
    assert declared == ["rayserve: ray_service.upgrade_strategy NewClusterWithIncrementalUpgrade is gated by `rollout` "
                        "(on by default), which reads Serve's metrics from the stack's own Prometheus: set "
                        "metrics.enabled (with metrics.install_operator), or rollout.enabled: false"]
    assert r.resources == []


def test_status_shows_how_to_read_the_gates_verdict(tmp_path, capsys):
    import yaml

    from rayserve_pulumi import cli

    stack = tmp_path / "Pulumi.gated.yaml"
    stack.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in incremental("kubernetes").items()}}))
    assert cli.main(["status", str(stack), "--program-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("get rayservice rayserve -o jsonpath='{.metadata.annotations.rayserve\\.io/rollout}{\"\\n\"}"
            "{.metadata.annotations.rayserve\\.io/rollout-reason}'") in out
