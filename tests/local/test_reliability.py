"""Reliability under steady loopback load against a real local Ray (bounded in count and time).

Each scenario reports requests sent and failed (printed at the end of the run and written to
test-results/reliability.json, ignored by git). RELIABILITY_SECONDS sets the load duration (default 10 s).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bench.loadgen import Load
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.config import build_serve_config
from tests.helpers import LOAD_RATE, REPORTS, free_local_ports, free_port, local_head, post, replica_pids

pytestmark = pytest.mark.ray
SECONDS = float(os.environ.get("RELIABILITY_SECONDS", "10"))
CONNECTIONS = 16
HTTP_PORT = free_port()


def _settings(mango_replicas: int, price: int) -> ServeSettings:
    return ServeSettings(applications=["fruit"], http_port=HTTP_PORT, overrides={"fruit": {
        "FruitMarket": {"num_replicas": 2},
        "MangoStand": {"num_replicas": mango_replicas, "user_config": {"price": price},
                       "health_check_period_s": 1, "health_check_timeout_s": 5},
    }})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    settings = LocalSettings(**free_local_ports(), num_cpus=4)
    props = provider_inputs(settings, build_serve_config(_settings(2, 3)), str(tmp_path_factory.mktemp("run")))
    with local_head(props) as (provider, result):
        yield {"provider": provider, "id": result.id, "outs": result.outs, "settings": settings,
               "gcs": settings.gcs_port, "run_dir": props["run_dir"]}


def _apply(cluster, mango_replicas: int, price: int) -> None:
    news = provider_inputs(cluster["settings"], build_serve_config(_settings(mango_replicas, price)), cluster["run_dir"])
    cluster["outs"] = cluster["provider"].update(cluster["id"], cluster["outs"], news).outs


def _load(cluster, name: str, action, check=None) -> dict:
    url = cluster["outs"]["app_urls"]["fruit"]
    with Load(url, ["MANGO", 1], connections=CONNECTIONS, duration_s=SECONDS, check=check, rate=LOAD_RATE) as load:
        load.wait_answered(CONNECTIONS)  # every connection is being answered before the change
        action()
    REPORTS[name] = load.result.summary()
    return REPORTS[name]


def _mango_pids(cluster) -> list[int]:
    return replica_pids(cluster["outs"]["dashboard_url"], "fruit", "MangoStand")


def test_user_config_change_under_load_fails_no_request(cluster):
    report = _load(cluster, "user_config change 3 -> 4", lambda: _apply(cluster, 2, 4),
                   check=lambda answer: answer in (3, 4))
    assert report["sent"] > 0 and report["failed"] == 0, report
    assert post(cluster["outs"]["app_urls"]["fruit"], ["MANGO", 1]) == 4


def test_scale_up_and_down_under_load_fails_no_request(cluster):
    def scale():
        _apply(cluster, 3, 4)
        assert len(_mango_pids(cluster)) == 3
        _apply(cluster, 2, 4)

    report = _load(cluster, "num_replicas 2 -> 3 -> 2", scale, check=lambda answer: answer == 4)
    assert report["sent"] > 0 and report["failed"] == 0, report
    assert len(_mango_pids(cluster)) == 2


def test_killed_replica_is_replaced_and_service_recovers(cluster):
    victim = _mango_pids(cluster)[0]
    report = _load(cluster, "SIGKILL one MangoStand replica", lambda: os.kill(victim, signal.SIGKILL),
                   check=lambda answer: answer == 4)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (len(pids := _mango_pids(cluster)) != 2 or victim in pids):
        time.sleep(0.5)
    assert victim not in _mango_pids(cluster) and len(_mango_pids(cluster)) == 2
    assert post(cluster["outs"]["app_urls"]["fruit"], ["MANGO", 1]) == 4
    # The goal is 0; requests in flight on the killed process can fail. Bound: one per connection.
    assert report["failed"] <= CONNECTIONS, report


MARK_UNHEALTHY = """
import sys, ray
from ray import serve
ray.init(address=sys.argv[1], logging_level="ERROR")
print(serve.get_deployment_handle("MangoStand", app_name="fruit").mark_unhealthy.remote().result(timeout_s=60))
"""


def test_unhealthy_replica_is_replaced_and_time_is_reported(cluster):
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": ray_ops.token_path()}
    proc = subprocess.run([sys.executable, "-c", MARK_UNHEALTHY, f"127.0.0.1:{cluster['gcs']}"],
                          env=env, capture_output=True, text=True, timeout=180)  # a driver of its own, gone after
    assert proc.returncode == 0, proc.stderr[-3000:]
    sick = int(proc.stdout.strip().splitlines()[-1])
    start = time.monotonic()  # the replica started failing its checks just before the driver returned
    deadline = start + 120
    while time.monotonic() < deadline and (sick in (pids := _mango_pids(cluster)) or len(pids) != 2):
        time.sleep(0.25)
    elapsed = time.monotonic() - start
    REPORTS["unhealthy replica replaced"] = {"seconds_after_marked": round(elapsed, 2), "health_check_period_s": 1}
    assert sick not in _mango_pids(cluster) and len(_mango_pids(cluster)) == 2, "unhealthy replica not replaced"
