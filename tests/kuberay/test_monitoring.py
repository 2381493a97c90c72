"""EKS monitoring as rendered: PodMonitors and the PrometheusRule against the Prometheus Operator's schemas
(@kubernetes-models/prometheus-operator, from npm), Ray's metrics ports named where the monitors look,
Ray's dashboards as ConfigMaps, nothing public."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rayserve_pulumi.constants import KUBE_PROMETHEUS_STACK_VERSION, SERVICE_LABEL
from rayserve_pulumi.observability.rules import rule_groups
from tests.helpers import ROOT
from tests.pulumi_harness import stack_values

NODE_TOOLS = ROOT / ".tools" / "node"
VALIDATOR = Path(__file__).with_name("validate_monitoring.mjs")
needs_schemas = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_TOOLS / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir(),
    reason="needs node and @kubernetes-models/prometheus-operator in .tools/node (scripts/setup.sh installs it)")


def _crs(r, kind: str) -> list[dict]:
    return [{"apiVersion": x.inputs["apiVersion"], "kind": x.inputs["kind"], "metadata": x.inputs["metadata"],
             "spec": x.inputs["spec"]} for x in r.of_type(f"kubernetes:monitoring.coreos.com/v1:{kind}")]


def schema_errors(manifests: list[dict]) -> list[str]:
    result = subprocess.run(["node", str(VALIDATOR), str(NODE_TOOLS)], input=json.dumps(manifests),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_schemas
def test_monitors_and_rules_pass_the_prometheus_operator_schemas(rendered):
    r = rendered["prod"]
    manifests = _crs(r, "PodMonitor") + _crs(r, "PrometheusRule")
    assert sorted(m["kind"] for m in manifests) == ["PodMonitor", "PodMonitor", "PrometheusRule"]
    assert schema_errors(manifests) == []


@needs_schemas
def test_the_schema_check_refuses_a_broken_monitor(rendered):
    broken = copy.deepcopy(_crs(rendered["prod"], "PodMonitor")[0])
    broken["spec"]["podMetricsEndpoints"][0]["port"] = 8080  # a number where the schema wants a port name
    assert schema_errors([broken])


def test_pod_monitors_find_the_ports_the_ray_pods_name(rendered):
    r = rendered["prod"]
    rs = r.of_type("kubernetes:ray.io/v1:RayService")[0].inputs
    cluster = rs["spec"]["rayClusterConfig"]
    name, namespace = rs["metadata"]["name"], rs["metadata"]["namespace"]
    pods = {"head": [cluster["headGroupSpec"]], "worker": cluster["workerGroupSpecs"]}
    for monitor in _crs(r, "PodMonitor"):
        kind = monitor["spec"]["selector"]["matchLabels"]["ray.io/node-type"]
        assert monitor["spec"]["selector"]["matchLabels"][SERVICE_LABEL] == name
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [namespace]}
        assert monitor["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
        for group in pods[kind]:
            named = {p["name"] for p in group["template"]["spec"]["containers"][0]["ports"]}
            assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= named
            assert group["rayStartParams"]["metrics-export-port"] == "8080"
            assert group["template"]["metadata"]["labels"][SERVICE_LABEL] == name


def test_alert_rules_dashboards_and_the_head_point_at_the_stack(rendered):
    r = rendered["prod"]
    assert _crs(r, "PrometheusRule")[0]["spec"] == rule_groups()
    maps = {m.inputs["metadata"]["name"]: m.inputs for m in r.of_type("kubernetes:core/v1:ConfigMap")}
    dashboards = {n: m for n, m in maps.items() if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    assert sorted(dashboards) == ["ray-default-dashboard", "ray-serve-dashboard", "ray-serve-deployment-dashboard"]
    for m in dashboards.values():
        (content,) = m["data"].values()
        assert json.loads(content)["panels"]  # Ray's own dashboard JSON
    head = r.of_type("kubernetes:ray.io/v1:RayService")[0].inputs["spec"]["rayClusterConfig"]["headGroupSpec"]
    env = {e["name"]: e["value"] for e in head["template"]["spec"]["containers"][0]["env"] if "value" in e}
    assert env["RAY_PROMETHEUS_HOST"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert env["RAY_GRAFANA_HOST"] == "http://kube-prometheus-stack-grafana.monitoring.svc:80"
    assert r.outputs["grafana"].startswith("kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80")
    assert r.outputs["prometheus"].startswith("kubectl -n monitoring port-forward svc/kube-prometheus-stack-prometheus")


def test_the_monitoring_chart_is_pinned_and_nothing_in_it_is_public(rendered):
    release = rendered["prod"].one("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack").inputs
    assert release["version"] == KUBE_PROMETHEUS_STACK_VERSION
    assert release["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    values = release["values"]
    for part in ("prometheus", "alertmanager", "grafana"):
        assert values[part]["service"]["type"] == "ClusterIP" and values[part]["ingress"]["enabled"] is False
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"  # no password in the values


def test_prometheus_may_scrape_ray_pods_through_the_network_policies(rendered):
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"]
                for p in rendered["prod"].of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    scrape = policies[f"{stack_values('prod')['ray_service']['name']}-metrics-from-monitoring"]
    assert scrape["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert sorted(p["port"] for p in scrape["ingress"][0]["ports"]) == [8080, 44217, 44227]


def test_dev_has_no_monitoring(rendered):
    r = rendered["dev"]
    assert not r.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor") and "grafana" not in r.outputs
