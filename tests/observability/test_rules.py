"""Every alert rule evaluated by Prometheus' own rule engine (`promtool test rules`, Debian's prometheus):
each fires on the series of a failing application and stays silent on a healthy one."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from rayserve_pulumi.observability import prometheus, rules

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="needs promtool from Debian's prometheus (scripts/setup.sh installs it)")
APP = {"application": "fruit"}
DEP = {**APP, "deployment": "MangoStand"}

# alert -> (labels it fires with, evaluation time, failing series, healthy series)
CASES = {
    "RayServeApplicationUnhealthy": (APP, "5m", [("ray_serve_application_status", APP, "1x10")],
                                     [("ray_serve_application_status", APP, "6x10")]),
    "RayServeDeploymentUnhealthy": (DEP, "5m", [("ray_serve_deployment_status", DEP, "2x10")],
                                    [("ray_serve_deployment_status", DEP, "6x10")]),
    "RayServeReplicaHealthChecksFailing": (DEP, "12m", [("ray_serve_health_check_failures_total", DEP, "0+1x20")],
                                           [("ray_serve_health_check_failures_total", DEP, "0x20")]),
    "RayServeRequestsFailing": (
        APP, "12m",
        [("ray_serve_num_http_requests_total", {**APP, "route": "/fruit", "status_code": "200"}, "0+100x20"),
         ("ray_serve_num_http_error_requests_total", {**APP, "route": "/fruit", "error_code": "500"}, "0+10x20")],
        [("ray_serve_num_http_requests_total", {**APP, "route": "/fruit", "status_code": "200"}, "0+100x20"),
         ("ray_serve_num_http_error_requests_total", {**APP, "route": "/fruit", "error_code": "500"}, "0+1x20"),
         ("ray_serve_num_http_error_requests_total", {**APP, "route": "/fruit", "error_code": "400"}, "0+50x20")]),
    "RayServeNoHealthyReplicas": (DEP, "5m", [("ray_serve_deployment_replica_healthy", {**DEP, "replica": "a"}, "0x10")],
                                  [("ray_serve_deployment_replica_healthy", {**DEP, "replica": "a"}, "1x10")]),
}


def _series(items) -> list[dict]:
    out = []
    for name, labels, values in items:
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        out.append({"series": f"{name}{{{selector}}}", "values": values})
    return out


def _rendered(template: str, labels: dict) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def test_every_alert_has_a_case():
    assert set(CASES) == {a["alert"] for a in rules.ALERTS}


@pytest.mark.parametrize("alert", sorted(CASES))
def test_the_alert_fires_on_a_failing_application_and_not_on_a_healthy_one(alert, tmp_path):
    labels, at, failing, healthy = CASES[alert]
    rule = next(a for a in rules.ALERTS if a["alert"] == alert)
    (tmp_path / prometheus.RULES_FILE).write_text(json.dumps(rules.rule_groups(60)))
    expected = [{"exp_labels": {**labels, **rule["labels"]},
                 "exp_annotations": {k: _rendered(v, labels) for k, v in rule["annotations"].items()}}]
    tests = [{"interval": "1m", "input_series": _series(failing),
              "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}]},
             {"interval": "1m", "input_series": _series(healthy),
              "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": [prometheus.RULES_FILE],
                                                       "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_config_and_rules_pass_promtool(tmp_path):
    config = prometheus.write(tmp_path, str(tmp_path / prometheus.SD_FILE), 15)
    (tmp_path / prometheus.SD_FILE).write_text(json.dumps([{"targets": ["127.0.0.1:8080"], "labels": {}}]))
    result = subprocess.run(["promtool", "check", "config", config], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS: 1 rule files found" in result.stdout, result.stdout + result.stderr
