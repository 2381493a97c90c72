"""GCS fault tolerance with Redis (Debian's redis-server, started by the VM bootstrap): restart the
head and the Serve apps come back from Redis without a redeploy."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from rayserve_pulumi.node_agent import bootstrap as vm_bootstrap
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.config import ServeSettings
from rayserve_pulumi.config import build_serve_config
from tests.helpers import free_port, post, ray_answers, replica_pids
from tests.helpers import REPORTS

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server (scripts/setup.sh installs it)")]
AGENT = [sys.executable, "-m", "rayserve_pulumi.node_agent"]


def _config(http_port: int, price: int) -> dict:
    return build_serve_config(ServeSettings(applications=["fruit", "calc"], http_port=http_port,
                                            overrides={"fruit": {"MangoStand": {"user_config": {"price": price}}}}))


def test_head_restart_recovers_serve_apps_from_redis(tmp_path, monkeypatch):
    http_port, dash_port, gcs = free_port(), free_port(), free_port()
    dash, url = f"http://127.0.0.1:{dash_port}", f"http://127.0.0.1:{http_port}/fruit"
    config_file = tmp_path / "config.json"
    common = ["--mode", "local", "--state-dir", str(tmp_path / "state"), "--dashboard-port", str(dash_port),
              "--redis-port", str(free_port()), "--timeout", "300"]
    head = ["head", *common, "--config-file", str(config_file), "--gcs-port", str(gcs), "--gcs-redis",
            "--cluster-name", "ft-test", "--dashboard-host", "127.0.0.1", "--num-cpus", "4"]

    def run(*args):
        proc = subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "state" / "auth_token"))  # the cluster's token
    try:
        config_file.write_text(json.dumps(_config(http_port, 3)))
        run(*head)
        config_file.write_text(json.dumps(_config(http_port, 7)))
        assert run("sync", *common, "--config-file", str(config_file)).strip() == "redeployed"
        assert post(url, ["MANGO", 1]) == 7
        pids_before = replica_pids(dash, "fruit", "MangoStand")
        applied = (tmp_path / "state" / vm_bootstrap.APPLIED_FILE).read_text()

        # The file now says price 3: a redeploy from it would answer 3; recovery from Redis answers 7.
        config_file.write_text(json.dumps(_config(http_port, 3)))
        ray_ops.stop()
        assert not ray_answers(dash)
        start = time.monotonic()
        run(*head, "--no-deploy")
        apps = ray_ops.wait_running(dash, ["fruit", "calc"], timeout=240)
        recovered_s = time.monotonic() - start

        assert post(url, ["MANGO", 1]) == 7  # the last applied user_config, from the GCS in Redis
        assert post(f"http://127.0.0.1:{http_port}/calc", ["ADD", 3]) == "6 pizzas please!"
        assert (tmp_path / "state" / vm_bootstrap.APPLIED_FILE).read_text() == applied  # no deploy happened
        pids_after = replica_pids(dash, "fruit", "MangoStand")
        assert set(pids_after).isdisjoint(pids_before)  # processes are new: in-memory state is not recovered
        REPORTS["head restart with GCS Redis"] = {
            "seconds_to_running": round(recovered_s, 1), "apps_recovered": sorted(apps),
            "recovered": "applications, deployments and their last user_config (GCS tables + Serve checkpoint in Redis)",
            "not_recovered": "replica processes and their in-memory state (new PIDs), requests in flight during the restart",
        }
    finally:
        subprocess.run([*AGENT, "stop", *common], capture_output=True, timeout=120)
        ray_ops.stop()
