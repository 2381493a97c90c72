"""The VM node agent's gated rollout, for real in its local mode (the venv's Ray, the agent run from the
archive user data ships): `sync --rollout` takes a Serve config whose application's code changed (here a
second version of the own-app Echo beside the first in one code folder, as one image could carry both)
in steps through rollout.stepped under 8 connections of loopback load. A good version ends serving with no
failed request; one failing 20 % of its requests is rolled back on its own, sync exits 1 naming the
threshold, and the previous version answers every request; a config-only change is applied in place."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.rollout_bench import ROLLOUT, variant
from rayserve_pulumi.aws.vm import user_data as vm_user_data
from rayserve_pulumi.config.code_check import APP_DIR_ENV
from rayserve_pulumi.node_agent import bootstrap as vm_bootstrap
from rayserve_pulumi.node_agent import ray_ops
from tests.helpers import REPORTS, agent_port_options, free_port, post, under_load
from tests.node_agent.test_vm_bootstrap import unpack_user_data_agent

pytestmark = [pytest.mark.ray, pytest.mark.timed]  # its gate judges p99 against the previous version's


def _config(http_port: int, version: str, greeting: str = "hello") -> dict:
    return {"http_options": {"host": "127.0.0.1", "port": http_port},
            "applications": [{"name": "echo", "route_prefix": "/echo", "import_path": f"{version}.echo:app",
                              "deployments": [{"name": "Echo", "num_replicas": 1,
                                               "user_config": {"greeting": greeting, "max_length": 80}},
                                              {"name": "Shouter", "user_config": {"exclaim": 1}}]}]}


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """A head started by the shipped agent, serving version v1 of Echo from a code folder that also holds
    the versions the tests roll out (v2 good, v3 failing a fifth of its requests)."""
    base = tmp_path_factory.mktemp("agent-rollout")
    agent_dir = unpack_user_data_agent(base / "opt")
    code = base / "code"
    for version, text in (("v1", variant("!")), ("v2", variant("?")), ("v3", variant("?", fail_rate=0.2))):
        (code / version).mkdir(parents=True)
        (code / version / "__init__.py").write_text("")
        (code / version / "echo.py").write_text(text)
    http_port, dash, gcs = free_port(), free_port(), free_port()
    config_file = base / "serve-config.json"
    config_file.write_text(json.dumps(_config(http_port, "v1")))
    common = ["--mode", "local", "--state-dir", str(base / "state"), "--dashboard-port", str(dash),
              "--timeout", "300"]
    # Ray's workers import the code folder (PYTHONPATH), and the agent's validator checks configs against it
    env = {**os.environ, "PYTHONPATH": str(code), APP_DIR_ENV: str(code),
           "RAY_AUTH_TOKEN_PATH": str(base / "state" / "auth_token")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", vm_user_data.AGENT_MODULE, *args], cwd=agent_dir, env=env,
                              capture_output=True, text=True, timeout=600)

    previous_token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    os.environ["RAY_AUTH_TOKEN_PATH"] = env["RAY_AUTH_TOKEN_PATH"]  # the cluster's token, for our REST calls
    try:
        head = run("head", *common, "--config-file", str(config_file), "--gcs-port", str(gcs),
                   "--dashboard-host", "127.0.0.1", "--num-cpus", "2",
                   "--autoscaler-metrics-port", str(free_port()), "--dashboard-metrics-port", str(free_port()),
                   *agent_port_options())
        assert head.returncode == 0, head.stderr[-3000:]
        yield {"sync": lambda config: _sync(run, common, config_file, config), "http_port": http_port,
               "url": f"http://127.0.0.1:{http_port}/echo", "dash": f"http://127.0.0.1:{dash}", "state": base / "state"}
    finally:
        run("stop", *common)
        ray_ops.stop(base / "state" / "ray-head.pid")  # in case the agent could not: only this head's group
        shutil.rmtree(code, ignore_errors=True)
        if previous_token_path is None:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_TOKEN_PATH"] = previous_token_path


def _sync(run, common: list[str], config_file: Path, config: dict) -> subprocess.CompletedProcess:
    config_file.write_text(json.dumps(config))
    return run("sync", *common, "--config-file", str(config_file), "--rollout", json.dumps(ROLLOUT))


def _under_load(agent, config: dict, accepted: tuple[str, ...], name: str) -> tuple[subprocess.CompletedProcess,
                                                                                    dict]:
    result: dict = {}
    report = under_load(agent["url"], "x", lambda answer: answer in accepted,
                        action=lambda: result.update(sync=agent["sync"](config)), recovered=lambda: True,
                        connections=8)
    REPORTS[f"vm agent rollout: {name}"] = report
    return result["sync"], report


def test_a_good_version_is_rolled_out_in_steps_with_no_failed_request(agent):
    sync, report = _under_load(agent, _config(agent["http_port"], "v2"), ("hello, X!", "hello, X?"), "good version")
    assert sync.returncode == 0 and sync.stdout.strip() == "rolled out", sync.stderr[-3000:]
    for line in ("sync: rollout: 5 % of traffic on the new version",
                 "sync: rollout: the new version serves every request"):
        assert line in sync.stderr, sync.stderr[-3000:]
    assert report["failed"] == 0, report
    assert [post(agent["url"], "x") for _ in range(10)] == ["hello, X?"] * 10
    assert set(ray_ops.applications(agent["dash"])) == {"echo"}  # the side version and the splitter are gone
    last_good = json.loads((agent["state"] / vm_bootstrap.LAST_GOOD_FILE).read_text())
    assert last_good["applications"][0]["import_path"] == "v2.echo:app"


def test_a_version_failing_a_fifth_of_its_requests_is_rolled_back_on_its_error_rate(agent):
    bad = _config(agent["http_port"], "v3")
    sync, report = _under_load(agent, bad, ("hello, X?",), "20 % errors")
    assert sync.returncode == 1 and sync.stdout.strip() == "rolled back", sync.stderr[-3000:]
    last = sync.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sync: Serve config {ray_ops.config_hash(bad)} was rolled back: rolled back at "), last
    assert "echo: error rate" in last and "(threshold 0.01)" in last and "the previous config" in last, last
    assert report["failed"] <= 0.01 * report["sent"], report
    assert [post(agent["url"], "x") for _ in range(10)] == ["hello, X?"] * 10
    assert set(ray_ops.applications(agent["dash"])) == {"echo"}
    # not retried every poll; the last good config is still v2's
    assert (agent["state"] / vm_bootstrap.APPLIED_FILE).read_text() == ray_ops.config_hash(bad)
    last_good = json.loads((agent["state"] / vm_bootstrap.LAST_GOOD_FILE).read_text())
    assert last_good["applications"][0]["import_path"] == "v2.echo:app"
    assert agent["sync"](bad).stdout.strip() == "unchanged"


def test_a_config_only_change_is_applied_in_place_without_steps(agent):
    sync = agent["sync"](_config(agent["http_port"], "v2", greeting="hi"))
    assert sync.returncode == 0 and sync.stdout.strip() == "redeployed", sync.stderr[-3000:]
    assert "rollout:" not in sync.stderr
    assert post(agent["url"], "x") == "hi, X?"
