"""GCS fault tolerance with Redis (Debian's redis-server, started by the node agent in local mode), each
scenario under loopback load: the head restarted, Redis restarted, Redis's data lost. One head serves them
all (starting one is most of a scenario's CPU); each scenario first brings it to the price it needs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from rayserve_pulumi.node_agent import bootstrap as vm_bootstrap
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.config import ServeSettings
from rayserve_pulumi.config import build_serve_config
from tests.helpers import agent_port_options, free_port, post, ray_answers, replica_pids, under_load
from tests.helpers import LOAD_RATE, REPORTS

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server (scripts/setup.sh installs it)")]
AGENT = [sys.executable, "-m", "rayserve_pulumi.node_agent"]
# Catches a recovery that hangs, not a slow one: alone each takes 15-20 s, but beside another real-Ray test on
# two cores a restarted head's processes wait for CPU (98 s seen in a fresh-clone run).
RECOVERY_BOUND_S = 180


def _config(http_port: int, price: int) -> dict:
    return build_serve_config(ServeSettings(applications=["fruit", "calc"], http_port=http_port,
                                            overrides={"fruit": {"MangoStand": {"user_config": {"price": price}}}}))


def _answers(url: str, expected, body=("MANGO", 1)) -> bool:
    import requests

    try:
        return requests.post(url, json=list(body), timeout=5).json() == expected
    except (requests.RequestException, ValueError):
        return False


def _wait_answers(url: str, expected, timeout: float = RECOVERY_BOUND_S) -> None:
    """Until `url` answers `expected`: a restarted head's proxy starts listening after the recovered
    applications already read RUNNING in the dashboard."""
    deadline = time.monotonic() + timeout
    while not _answers(url, expected):
        assert time.monotonic() < deadline, f"{url} did not answer {expected!r} within {timeout}s"
        time.sleep(0.2)


class _Head:
    """A VM head in local mode with GCS fault tolerance on a Redis the node agent started."""

    def __init__(self, tmp_path, price: int = 3):
        self.http, dash_port, gcs, self.redis_port = free_port(), free_port(), free_port(), free_port()
        self.dash, self.url = f"http://127.0.0.1:{dash_port}", f"http://127.0.0.1:{self.http}/fruit"
        self.state, self.config_file = tmp_path / "state", tmp_path / "config.json"
        self.common = ["--mode", "local", "--state-dir", str(self.state), "--dashboard-port", str(dash_port),
                       "--redis-port", str(self.redis_port), "--timeout", "300"]
        self.head = ["head", *self.common, "--config-file", str(self.config_file), "--gcs-port", str(gcs),
                     "--gcs-redis", "--cluster-name", "ft-test", "--dashboard-host", "127.0.0.1", "--num-cpus", "4",
                     "--autoscaler-metrics-port", str(free_port()), "--dashboard-metrics-port", str(free_port()),
                     *agent_port_options()]
        self.config_file.write_text(json.dumps(_config(self.http, price)))
        self.head_pid = vm_bootstrap.node_pid_file(self.redis_args(), vm_bootstrap.HEAD_CONTAINER)

    def run(self, *args) -> str:
        proc = subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    def redis_args(self):
        import argparse
        return argparse.Namespace(mode="local", state_dir=str(self.state), redis_port=self.redis_port)

    def stop_redis(self) -> None:
        vm_bootstrap.stop_redis(self.redis_args())  # by its PID file
        deadline = time.monotonic() + 30
        while vm_bootstrap.redis_answers(self.redis_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not vm_bootstrap.redis_answers(self.redis_port)

    def restart_head(self) -> None:
        """What the head container's restart policy (VM) or KubeRay (EKS) does when the GCS exits."""
        assert ray_ops.stop(self.head_pid)
        self.run(*self.head, "--no-deploy")

    def serving(self, price: int) -> str:
        """The head running (started again if a scenario before left it down) and serving `price`, applied by
        the sync as on a VM: what the sync said ("redeployed", or "unchanged" when it already served it)."""
        if not ray_answers(self.dash):
            self.run(*self.head)
        self.config_file.write_text(json.dumps(_config(self.http, price)))
        said = self.sync()
        _wait_answers(self.url, price)
        return said

    def sync(self) -> str:
        """What the sync timer does within config_poll_seconds on a VM: what it said."""
        return self.run("sync", *self.common, "--config-file", str(self.config_file)).strip()

    def close(self) -> None:
        subprocess.run([*AGENT, "stop", *self.common], capture_output=True, timeout=120)
        ray_ops.stop(self.head_pid)  # in case the agent could not: only this head's process group


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """The module's head, deployed at price 3; stopped after the last scenario."""
    head = _Head(tmp_path_factory.mktemp("ft"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_TOKEN_PATH", str(head.state / "auth_token"))  # the cluster's token
        try:
            head.run(*head.head)
            yield head
        finally:
            head.close()


def test_head_restart_recovers_serve_apps_from_redis(head):
    calc = f"http://127.0.0.1:{head.http}/calc"
    head.serving(3)
    assert head.serving(7) == "redeployed"
    assert post(head.url, ["MANGO", 1]) == 7
    pids_before = replica_pids(head.dash, "fruit", "MangoStand")
    applied = (head.state / vm_bootstrap.APPLIED_FILE).read_text()

    # The file now says price 3: a redeploy from it would answer 3; recovery from Redis answers 7.
    head.config_file.write_text(json.dumps(_config(head.http, 3)))
    marks = {}

    def restart():
        marks["stop"] = time.monotonic()
        assert ray_ops.stop(head.head_pid)
        assert not ray_answers(head.dash)
        marks["start"] = time.monotonic()  # the node is down; the head starts again
        head.run(*head.head, "--no-deploy")

    load = under_load(head.url, ["MANGO", 1], lambda a: a == 7, restart,
                      lambda: _answers(head.url, 7) and _answers(calc, "6 pizzas please!", ["ADD", 3]),
                      bound_s=RECOVERY_BOUND_S)
    apps = ray_ops.wait_running(head.dash, ["fruit", "calc"], timeout=240)
    assert load["within_bound"] and load["failures_outside_the_outage"] == 0, str(load)

    assert post(head.url, ["MANGO", 1]) == 7  # the last applied user_config, from the GCS in Redis
    assert post(calc, ["ADD", 3]) == "6 pizzas please!"
    assert (head.state / vm_bootstrap.APPLIED_FILE).read_text() == applied  # no deploy happened
    pids_after = replica_pids(head.dash, "fruit", "MangoStand")
    assert set(pids_after).isdisjoint(pids_before)  # processes are new: in-memory state is not recovered
    REPORTS["head restart with GCS Redis"] = {
        **load, "head_start_to_every_app_answering_s": round(
            load["seconds_until_every_app_answers"] - (marks["start"] - marks["stop"]), 1),
        "apps_recovered": sorted(apps),
        "recovered": "applications, deployments and their last user_config (GCS tables + Serve checkpoint in Redis)",
        "not_recovered": "replica processes and their in-memory state (new PIDs), requests in flight during the restart",
    }


def _command_lines_holding(secret: str, pid_files) -> list[str]:
    """Command lines of the processes these PID files' sessions hold that contain `secret`."""
    found = []
    for pid_file in pid_files:
        for argv in procs.commands(procs.read(pid_file)["sid"]).values():
            if secret in " ".join(argv):
                found.append(argv[0].split()[0].rsplit("/", 1)[-1])
    return found


def test_a_restarted_redis_keeps_serve_answering_and_the_head_recovers_without_a_redeploy(head):
    from bench.loadgen import Load

    head.serving(3)
    password = vm_bootstrap.redis_password(head.state)
    # Redis reads it from its config file, `ray start` from the environment; Ray itself still hands it to
    # its own binaries as a flag (gcs_server, and raylet for the workers it starts): only those show it.
    holders = _command_lines_holding(password, [vm_bootstrap.redis_pid_file(head.redis_args()), head.head_pid])
    assert set(holders) <= {"gcs_server", "raylet"} and "gcs_server" in holders, holders
    applied = (head.state / vm_bootstrap.APPLIED_FILE).read_text()
    with Load(head.url, ["MANGO", 1], connections=16, duration_s=60, check=lambda a: a == 3,
              rate=LOAD_RATE) as load:
        load.wait_answered(16)
        head.stop_redis()
        vm_bootstrap.start_redis(head.redis_args(), vm_bootstrap.redis_password(head.state))  # same data, same password
        load.finish_in(10)  # Serve answers on while the GCS has lost its Redis, and after
    during = load.result.summary()
    assert during["failed"] == 0, during  # Serve's data plane does not need the GCS
    gcs_survived = ray_answers(head.dash)
    start = time.monotonic()
    if not gcs_survived:
        head.restart_head()
    ray_ops.wait_running(head.dash, ["fruit", "calc"], timeout=240)
    _wait_answers(head.url, 3)  # the recovered user_config, once the proxy listens again
    restarted_s = time.monotonic() - start
    assert (head.state / vm_bootstrap.APPLIED_FILE).read_text() == applied  # recovered, not redeployed
    REPORTS["Redis restarted under load"] = {
        **during, "gcs_kept_running": gcs_survived, "stop_and_restart_head_to_fruit_answering_s": round(restarted_s, 1),
        "recovered": "the GCS exits when Redis goes away; the restarted head reads its state back from Redis"}


def test_a_lost_redis_loses_the_apps_until_the_sync_redeploys_them(head):
    head.serving(3)
    seen = {}

    def lose_redis():
        head.stop_redis()
        shutil.rmtree(head.state / "redis")  # the volume's Redis data is gone
        head.restart_head()  # starts an empty Redis and a head that finds nothing to recover
        seen["apps_after_head_restart"] = sorted(ray_ops.applications(head.dash))
        seen["sync"] = head.sync()

    load = under_load(head.url, ["MANGO", 1], lambda a: a == 3, lose_redis, lambda: _answers(head.url, 3),
                      bound_s=RECOVERY_BOUND_S)
    assert seen == {"apps_after_head_restart": [], "sync": "redeployed"}, seen  # Ray came back empty
    assert load["within_bound"] and load["failures_outside_the_outage"] == 0, str(load)
    REPORTS["Redis lost (data deleted)"] = {
        **load, "apps_after_head_restart": seen["apps_after_head_restart"],
        "recovery": "the sync timer (vm_bootstrap sync) redeploys the applied config"}
