"""Failure recovery as the seed describes it, each failure under 16 connections of loopback load on a real
local Ray: a Serve proxy actor killed, a worker node lost, a code-level update with the shipped rollout
settings. Each reports requests sent and failed and the time until every app answers correctly again
(printed at the end of the run, written to test-results/). The Redis and head scenarios are in
tests/node_agent/test_gcs_fault_tolerance.py."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from rayserve_pulumi.config import LocalSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.node_agent import procs, ray_ops
from tests.helpers import REPORTS, free_local_ports, free_port, local_head, replica_pids, under_load

pytestmark = pytest.mark.ray
CONNECTIONS = 16
RECOVERY_BOUND_S = 90  # every app answers correctly again within this, or the scenario fails


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    settings = LocalSettings(**free_local_ports(), num_cpus=2)
    config = build_serve_config(ServeSettings(applications=["fruit", "calc"], http_port=free_port(), overrides={
        "fruit": {"FruitMarket": {"num_replicas": 2}, "MangoStand": {"num_replicas": 2}}}))
    with local_head(provider_inputs(settings, config, str(tmp_path_factory.mktemp("run")))) as (provider, result):
        yield {"provider": provider, "id": result.id, "outs": result.outs, "settings": settings, "config": config}


def _all_answer(outs: dict) -> bool:
    urls = outs["app_urls"]
    try:
        return (requests.post(urls["fruit"], json=["MANGO", 1], timeout=5).json() == 3 and
                requests.post(urls["calc"], json=["ADD", 3], timeout=5).json() == "6 pizzas please!")
    except (requests.RequestException, ValueError):
        return False


def _scenario(cluster, name: str, action, recovered=None, tail_s: float = 3) -> dict:
    """Run `action` under load; time from the action until `recovered()` and every app answers."""
    report = under_load(cluster["outs"]["app_urls"]["fruit"], ["MANGO", 1], lambda a: a == 3, action,
                        lambda: (recovered is None or recovered()) and _all_answer(cluster["outs"]),
                        RECOVERY_BOUND_S, CONNECTIONS, tail_s)
    REPORTS[name] = report
    assert report["within_bound"] and _all_answer(cluster["outs"]), report
    return report


def test_a_killed_serve_proxy_is_restarted_and_only_the_outage_fails(cluster):
    actors = ray_ops.api_get(cluster["outs"]["dashboard_url"], "/api/v0/actors?detail=1&limit=1000")
    proxy = next(a for a in actors["data"]["result"]["result"]
                 if a.get("name", "").startswith("SERVE_PROXY_ACTOR") and a["state"] == "ALIVE")
    report = _scenario(cluster, "Serve proxy actor SIGKILL", lambda: os.kill(proxy["pid"], signal.SIGKILL))
    # One node, one proxy: HTTP is down until Serve's controller starts a new proxy. No request outside that
    # window fails, and requests resume by themselves (no redeploy). The outage's own: a request in flight at
    # the kill, and one sent during it that fails after it (16 answered 500 about 3 s later in one run).
    assert report["failures_outside_the_outage"] == 0, str(report)


def test_a_code_level_update_restarts_replicas_without_failing_a_request(cluster):
    """A change Serve must restart replicas for (here a runtime_env variable, as a new image's code would
    be), rolled out with the shipped max_surge_percent: 100 and Serve's graceful shutdown."""
    dash = cluster["outs"]["dashboard_url"]
    before = replica_pids(dash, "fruit", "MangoStand")
    changed = copy.deepcopy(json.loads(cluster["outs"]["serve_config_json"]))
    mango = next(d for d in changed["applications"][0]["deployments"] if d["name"] == "MangoStand")
    assert mango["max_surge_percent"] == 100  # what the stacks ship
    # the config's ray_actor_options replace the code's as a whole: keep num_cpus
    mango["ray_actor_options"] = {"num_cpus": 0.1, "runtime_env": {"env_vars": {"APP_REVISION": "2"}}}
    news = {**cluster["outs"], "serve_config_json": json.dumps(changed, sort_keys=True)}

    def update():
        cluster["outs"] = cluster["provider"].update(cluster["id"], cluster["outs"], news).outs

    # the old replicas drain after the update returns (Serve's graceful shutdown): the load outlasts that
    report = _scenario(cluster, "code-level update (replicas restarted)", update, tail_s=10)
    assert set(replica_pids(dash, "fruit", "MangoStand")).isdisjoint(before)  # new processes served
    assert report["failed"] == 0, report


def test_a_lost_worker_node_moves_its_replicas_to_the_head(cluster, tmp_path):
    env = dict(os.environ, **ray_ops.auth_env("token"))
    pid_file, log = tmp_path / "worker.pid", tmp_path / "worker.log"  # a session of its own: lost at once
    # started as the package starts a node: agents on free ports of its own, and the raylet told the dashboard
    # agent's (with Ray's defaults a raylet waits 15 s for an agent to publish a port Ray picked, and the node
    # fails; on busy cores an agent has taken 16-22 s to start: tests.helpers.slow_agents_env)
    worker = ray_ops.worker_args(f"127.0.0.1:{cluster['settings'].gcs_port}", num_cpus=2,
                                 agent_ports={key: free_port() for key in ray_ops.AGENT_PORT_FLAGS})
    node = procs.spawn(ray_ops.ray_command(sys.executable, [*worker, "--block"]), pid_file, env=env, log_file=log,
                       wait=False)
    try:
        dash = cluster["outs"]["dashboard_url"]
        deadline = time.monotonic() + 180  # catches a worker that never joins; on busy cores a head took 35 s
        while time.monotonic() < deadline and len(_alive_nodes(dash)) < 2:
            assert node.poll() is None, f"the worker node exited: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        assert len(_alive_nodes(dash)) == 2, log.read_text()[-2000:]
        worker_node = next(n for n in _alive_nodes(dash) if not n["raylet"].get("isHeadNode"))["raylet"]["nodeId"]
        _wait_until_spread_reaches(cluster["settings"].gcs_port, worker_node, env, log)
        bigger = copy.deepcopy(cluster["config"])
        next(d for d in bigger["applications"][0]["deployments"] if d["name"] == "MangoStand")["num_replicas"] = 4
        outs = cluster["provider"].update(cluster["id"], cluster["outs"], {
            **cluster["outs"], "serve_config_json": json.dumps(bigger, sort_keys=True)}).outs
        assert worker_node in _mango_nodes(dash), "no replica landed on the worker node"
        report = _scenario(cluster, "worker node lost (SIGKILL of every process of the node)",
                           lambda: procs.stop(pid_file, grace_s=0),
                           recovered=lambda: (nodes := _mango_nodes(dash)).count(worker_node) == 0 and len(nodes) == 4)
        assert report["failed"] <= CONNECTIONS, report  # at most the requests in flight on the lost node
        cluster["outs"] = outs
    finally:
        procs.stop(pid_file, grace_s=0)


SPREAD_PROBE = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
worker, deadline = sys.argv[2], time.monotonic() + float(sys.argv[3])

@ray.remote(num_cpus=0.01, scheduling_strategy="SPREAD")
def node():
    return ray.get_runtime_context().get_node_id()

while worker not in ray.get([node.remote() for _ in range(4)]):
    assert time.monotonic() < deadline, "SPREAD never placed a task on the worker node"
    time.sleep(0.5)
"""


def _wait_until_spread_reaches(gcs_port: int, worker_node: str, env: dict, log) -> None:
    """The GCS can list a node ALIVE before the head's raylet, which places Serve's SPREAD replicas, has it in its
    own view of the cluster (CI saw all four replicas land on the head): wait until a driver's SPREAD tasks,
    placed by that same raylet, reach the worker."""
    proc = subprocess.run([sys.executable, "-c", SPREAD_PROBE, f"127.0.0.1:{gcs_port}", worker_node, "120"],
                          env=env, capture_output=True, text=True, timeout=240)  # a driver of its own, gone after
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{log.read_text()[-2000:]}"


def _alive_nodes(dash: str) -> list[dict]:
    return [n for n in ray_ops.api_get(dash, "/nodes?view=summary")["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]


def _mango_nodes(dash: str) -> list[str]:
    dep = ray_ops.status(dash)["applications"]["fruit"]["deployments"]["MangoStand"]
    return [r["node_id"] for r in dep["replicas"] if r["state"] == "RUNNING"]
