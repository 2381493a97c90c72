"""The local stack with metrics on: a real Prometheus (Debian's) scraping a real Ray, read over its HTTP API."""
from __future__ import annotations

import math
import shutil
import time

import pytest
import requests

from rayserve_pulumi.config import LocalSettings, MetricsSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.local.lifecycle import prometheus_pid_file, ray_temp_dir
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.rollout.gate import LATENCY_BUCKETS_MS
from tests.helpers import free_local_ports, free_port, local_head, post

pytestmark = [pytest.mark.ray, pytest.mark.timed,  # a gauge must reach Prometheus by a deadline
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus (scripts/setup.sh installs it)")]
REQUESTS = 40
STEADY_S = 15  # longer than Serve's 10 s between re-reports of an unchanged gauge


def _query(prom: str, expr: str) -> list[dict]:
    body = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _scalar(prom: str, expr: str) -> float:
    result = _query(prom, expr)
    return float(result[0]["value"][1]) if result else 0.0


def _wait(what: str, condition, timeout: float = 240):
    """Poll `condition` until it returns a true value (Ray exports every 10 s, Prometheus scrapes every second;
    on two saturated cores, with the mock tests beside these, the first export can take much longer); the error
    names what was expected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := condition()):
            return value
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def metered(tmp_path_factory):
    settings = LocalSettings(**free_local_ports(), num_cpus=4)
    config = build_serve_config(ServeSettings(applications=["fruit"], http_port=free_port(),
                                              overrides={"fruit": {"MangoStand": {"num_replicas": 2}}}))
    props = provider_inputs(settings, config, str(tmp_path_factory.mktemp("run")),
                            metrics=MetricsSettings(enabled=True, prometheus_port=free_port(), scrape_interval_s=1))
    # Ray's export interval stays its default, as the stack ships it. Ray's metrics agent drops a gauge not
    # re-reported within two export intervals, and Serve re-reports an unchanged replica gauge every 10 s: at a
    # 1 s export interval each replica's series is there about 2 s in 10, and the per-deployment sum flickers.
    with local_head(props) as head:
        yield head


def test_a_serve_request_counter_rises_by_the_requests_sent(metered):
    _, result = metered
    prom, url = result.outs["prometheus_url"], result.outs["app_urls"]["fruit"]
    counter = 'sum(ray_serve_num_http_requests_total{application="fruit"})'
    post(url, ["MANGO", 1])  # the series exists once a request was counted
    before = _wait("the counter appears in Prometheus", lambda: _scalar(prom, counter))
    for _ in range(REQUESTS):
        assert post(url, ["MANGO", 1]) == 3
    after = _wait(f"the counter rises by {REQUESTS}", lambda: (v := _scalar(prom, counter)) >= before + REQUESTS and v)
    assert after - before >= REQUESTS
    print(f"ray_serve_num_http_requests_total{{application=fruit}}: {before:.0f} -> {after:.0f} after {REQUESTS} requests")


def test_serves_latency_histogram_has_the_buckets_a_rollout_gate_reads(metered):
    """Serve's request-latency histogram in Prometheus has the package's buckets (Ray's
    RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS, in every stack's Serve environment), so a gate reading p99 from it
    reads within a bucket's width, not within Ray's default 2x."""
    _, result = metered
    prom, url = result.outs["prometheus_url"], result.outs["app_urls"]["fruit"]
    post(url, ["MANGO", 1])
    series = _wait("Serve's latency histogram appears in Prometheus", lambda: _query(
        prom, 'ray_serve_http_request_latency_ms_bucket{application="fruit"}'))
    assert {float(s["metric"]["le"]) for s in series} == {*LATENCY_BUCKETS_MS, math.inf}


def test_the_healthy_replica_gauge_matches_each_deployments_replica_count(metered):
    _, result = metered
    prom, dash = result.outs["prometheus_url"], result.outs["dashboard_url"]
    deployments = ray_ops.status(dash)["applications"]["fruit"]["deployments"]
    want = {name: int(dep["target_num_replicas"]) for name, dep in deployments.items()}
    assert want["MangoStand"] == 2

    seen: dict = {}

    def gauge():
        rows = _query(prom, 'sum by (deployment) (ray_serve_deployment_replica_healthy{application="fruit"})')
        seen["last"] = got = {r["metric"]["deployment"]: int(float(r["value"][1])) for r in rows}
        return got if got == want else None

    try:
        assert _wait(f"ray_serve_deployment_replica_healthy per deployment == {want}", gauge) == want
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen.get('last')}") from None
    # and it stays so across Serve's 10 s re-report interval: an alert's `for:` needs a series without gaps
    start = time.monotonic()
    while (held := time.monotonic() - start) < STEADY_S:
        assert gauge() == want, f"the gauge left {want} after {held:.1f} s: {seen['last']}"
        time.sleep(1)  # one Prometheus scrape


def test_every_ray_node_is_scraped_and_the_alert_rules_are_loaded(metered):
    _, result = metered
    prom = result.outs["prometheus_url"]
    targets = requests.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    assert targets and all(t["labels"]["job"] == "ray" for t in targets)
    # discovered through this head's own file (another head on the machine keeps its own, elsewhere)
    own = ray_temp_dir(result.outs) + "/"
    assert {t["discoveredLabels"]["__meta_filepath"] for t in targets} == {own + "prom_metrics_service_discovery.json"}
    head = next(n["raylet"] for n in ray_ops.api_get(result.outs["dashboard_url"], "/nodes?view=summary")["data"]["summary"])
    instances = {t["labels"]["instance"] for t in targets}
    assert f"{head['nodeManagerAddress']}:{head['metricsExportPort']}" in instances
    # the dashboard's own metrics on the stack's port (Ray's fixed default would be another head's)
    assert any(i.endswith(f":{result.outs['ray_env']['DASHBOARD_METRIC_PORT']}") for i in instances), instances
    _wait("every target up", lambda: all(t["health"] == "up" for t in
                                         requests.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]))
    def evaluated():
        groups = requests.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return groups if all(r["health"] != "unknown" for g in groups for r in g["rules"]) else None

    groups = _wait("every alert rule evaluated once", evaluated)
    assert [g["name"] for g in groups] == ["rayserve"] and len(groups[0]["rules"]) == 5
    assert [r["name"] for r in groups[0]["rules"] if r["health"] != "ok"] == []  # each evaluates on live data
    firing = [r["name"] for r in groups[0]["rules"] if r["state"] != "inactive"]
    assert firing == []  # a healthy stack raises no alert


def test_the_dashboard_is_pointed_at_prometheus(metered):
    _, result = metered
    health = ray_ops.api_get(result.outs["dashboard_url"], "/api/prometheus_health")
    assert health.get("result") is True, health


def test_delete_stops_prometheus_by_its_pid_file(metered):
    provider, result = metered
    pid_file = prometheus_pid_file(result.outs)
    sid = procs.read(pid_file)["sid"]
    assert procs.members(sid)
    prom = result.outs["prometheus_url"]
    provider.delete(result.id, result.outs)
    assert procs.members(sid) == [] and not pid_file.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{prom}/-/ready", timeout=5)
