"""A team's own project on the local platform, for real: `rayserve up` serves the own-app example (copied
outside the checkout, on free ports), a change to its code is served by the next `up` (a gated rollout that
does not wait for traffic an idle stack does not get), and a config whose
`reconfigure` raises is rolled back under load: `up` exits 1, the previous config keeps answering, and
`status` and the state file say so."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi.local.args import RUN_DIR
from rayserve_pulumi.local.cli import State
from rayserve_pulumi.node_agent import procs, ray_ops
from tests.helpers import REPORTS, free_local_ports, free_port, post, under_load
from tests.pulumi_harness import ROOT

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def shop():
    with tempfile.TemporaryDirectory(prefix="shop-up-") as folder:
        project = Path(folder) / "own-app"
        shutil.copytree(ROOT / "examples" / "own-app", project, ignore=shutil.ignore_patterns("__pycache__"))
        stack = project / "Pulumi.local.yaml"
        doc = yaml.safe_load(stack.read_text())
        doc["config"]["rayserve:local"] = free_local_ports()
        # Serve's own proxy, as the rollout tests and figures use (the HAProxy ingress is covered by
        # test_haproxy_ingress; its rollouts by bench.rollout_bench --proxy haproxy)
        doc["config"]["rayserve:serve"].update(http_port=free_port(), proxy="default")
        doc["config"]["rayserve:rollout"] = {"watch_s": 3}  # the gated rollout's steps, each watched 3 s, not 10
        stack.write_text(yaml.safe_dump(doc))
        pid = project / RUN_DIR / "shop" / "ray-head.pid"

        def run(action: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(Path(sys.executable).with_name("rayserve")), action, str(stack)],
                                  capture_output=True, text=True, timeout=600, cwd=project)

        try:
            up = run("up")
            assert up.returncode == 0, up.stderr[-3000:]
            yield {"project": project, "run": run, "out": json.loads(up.stdout),
                   "state": project / ".pulumi-state" / "local-direct.json"}
        finally:
            run("destroy")
            ray_ops.stop(pid)
            procs.stop(pid.with_name("prometheus.pid"))


def _config(shop) -> Path:
    return shop["project"] / "serve_config.yaml"


def _echo(config: dict) -> dict:
    return next(d for d in config["applications"][0]["deployments"] if d["name"] == "Echo")


def test_rayserve_up_serves_the_projects_own_code(shop):
    assert post(shop["out"]["app_urls"]["echo"], "hi there") == "hello, HI THERE!"
    assert not list(shop["project"].rglob("__pycache__"))  # validation wrote nothing into the team's code


def test_a_code_change_is_served_by_the_next_up(shop):
    echo_py = shop["project"] / "src" / "shop" / "echo.py"
    echo_py.write_text(echo_py.read_text().replace('"!" * self.exclaim', '"?" * self.exclaim'))
    up = shop["run"]("up")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "local: updating Serve in place" in up.stderr and "starting the Ray head" not in up.stderr
    assert "plan: echo/Echo: replica roll (code)" in up.stderr  # the plan says the code rolls the replicas
    # gated, with no traffic: the step before all traffic moves does not wait out its budget for requests
    assert "rollout: the new version serves every request" in up.stderr, up.stderr[-3000:]
    assert "latency not judged: at 0.0 and 0.0 requests/s" in up.stderr, up.stderr[-3000:]
    assert post(shop["out"]["app_urls"]["echo"], "hi") == "hello, HI?"


def test_a_config_whose_reconfigure_raises_is_rolled_back_under_load(shop):
    url = shop["out"]["app_urls"]["echo"]
    good = _config(shop).read_text()
    bad = yaml.safe_load(good)
    _echo(bad)["user_config"]["fail"] = True  # schema-valid, and the model's: only the replica can tell
    _config(shop).write_text(yaml.safe_dump(bad))
    result: dict = {}
    try:
        report = under_load(url, "x", lambda answer: answer == "hello, X?",
                            action=lambda: result.update(up=shop["run"]("up")), recovered=lambda: True,
                            connections=8)  # load throughout the failed deploy and the rollback
    finally:
        _config(shop).write_text(good)
    up = result["up"]
    REPORTS["own app: reconfigure raises, rolled back"] = report
    assert up.returncode == 1
    last = up.stderr.strip().splitlines()[-1]
    assert "RuntimeError: cannot load the greeting table (user_config.fail is set)" in last, last
    assert "rolled back: the previous config" in last and "is serving" in last
    assert "Traceback" not in up.stderr
    # no request sent before the bad config or after the rollback failed; one sent while the bad config was
    # being tried can wait on the failing replica until the client's 30 s timeout (1 in 29,345 in one run)
    assert report["failures_outside_the_outage"] == 0, str(report)
    assert post(url, "x") == "hello, X?"
    live = State(shop["state"]).live()
    assert live["rolled_back"]["cause"].startswith("Serve could not deploy")
    status = shop["run"]("status")
    assert f"live config: {live['config_hash']} (the last up rolled back config" in status.stdout, status.stdout
    assert "echo: RUNNING" in status.stdout
    again = shop["run"]("up")  # the good config again: the live one, nothing to do
    assert again.returncode == 0 and "local: no changes" in again.stderr, again.stderr[-2000:]
