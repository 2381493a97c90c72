"""The node agent's local mode starts a Ray node again when Ray says it timed out during startup (its raylet
gave up waiting for an agent on a busy machine), as Docker's restart policy does for the containers on a VM;
any other failure fails at once. Ray is replaced by a record of the starts and stops."""
from __future__ import annotations

import argparse
import socket

import pytest

from rayserve_pulumi.node_agent import bootstrap, procs, ray_ops
from tests.helpers import agent_port_options, free_port

TIMED_OUT = (f"ray start --head failed (1): Exception: {bootstrap.STARTUP_TIMED_OUT}. This could happen because "
             "some of the raylet failed to startup or the GCS has become overloaded.")


@pytest.fixture()
def ray(monkeypatch):
    """`outcomes`: what each start does in turn (None: starts); `calls`: the starts and stops, in order."""
    record = {"outcomes": [], "calls": []}

    def spawn(args, pid_file, **kwargs):
        record["calls"].append("start")
        record["spawned"] = kwargs
        failure = record["outcomes"].pop(0)
        if failure:
            raise RuntimeError(failure)

    monkeypatch.setattr(procs, "spawn", spawn)
    monkeypatch.setattr(ray_ops, "stop", lambda pid_file: record["calls"].append("stop") or True)
    return record


def _args(tmp_path, *options: str) -> argparse.Namespace:
    """A head's command line in local mode, every port a free one of this test's unless `options` says."""
    ports = ["--gcs-port", str(free_port()), "--dashboard-port", str(free_port()), *agent_port_options()]
    return bootstrap.parser().parse_args(["head", "--mode", "local", "--state-dir", str(tmp_path), "--auth-mode",
                                          "disabled", "--config-file", "c.json", *ports, *options])


def _start(tmp_path, *options: str, container: str = bootstrap.HEAD_CONTAINER) -> None:
    bootstrap.start_ray(_args(tmp_path, *options), ["start", "--head"], {}, container, None)


def test_a_node_that_timed_out_during_startup_is_started_again(ray, tmp_path, capsys):
    ray["outcomes"] = [TIMED_OUT, None]
    _start(tmp_path)
    assert ray["calls"] == ["start", "stop", "start"]  # what the failed start left is stopped first
    assert "timed out during startup (attempt 1 of 3); starting it again" in capsys.readouterr().err


def test_starts_that_keep_timing_out_fail_with_rays_cause(ray, tmp_path):
    ray["outcomes"] = [TIMED_OUT] * bootstrap.START_ATTEMPTS
    with pytest.raises(RuntimeError, match=bootstrap.STARTUP_TIMED_OUT):
        _start(tmp_path)
    assert ray["calls"].count("start") == bootstrap.START_ATTEMPTS


def test_any_other_failure_fails_at_once(ray, tmp_path):
    ray["outcomes"] = ["ray start --head failed (1): ValueError: --port 6379 is taken"]
    with pytest.raises(RuntimeError, match="is taken"):
        _start(tmp_path)
    assert ray["calls"] == ["start"]


@pytest.mark.parametrize("option", ["--metrics-export-port", "--runtime-env-agent-port", "--gcs-port"])
def test_a_port_another_program_listens_on_is_refused_by_its_option_before_anything_starts(ray, tmp_path, option):
    """Ray would give up on a taken port only after its timeouts, naming none."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit, match=rf"cannot start the Ray node ray-head: {option} {port} already in use"):
            _start(tmp_path, option, str(port))
    assert ray["calls"] == []


@pytest.mark.parametrize("set_bound", [None, "45"])
def test_a_head_gives_its_dashboard_the_bound_and_waits_longer_than_it(ray, tmp_path, monkeypatch, set_bound):
    """Ray's 60 s for the dashboard failed a head on a busy machine (ray_ops.DASHBOARD_START_S); a bound set in
    the agent's environment is kept. The wait for the whole start outlasts the dashboard's."""
    if set_bound is None:
        monkeypatch.delenv(ray_ops.DASHBOARD_START_ENV, raising=False)
    else:
        monkeypatch.setenv(ray_ops.DASHBOARD_START_ENV, set_bound)
    bound = int(set_bound or ray_ops.DASHBOARD_START_S)
    ray["outcomes"] = [None]
    _start(tmp_path)
    assert ray["spawned"]["env"][ray_ops.DASHBOARD_START_ENV] == str(bound)
    assert ray["spawned"]["timeout"] == bound + ray_ops.NODE_START_MARGIN_S


def test_a_worker_starts_no_dashboard_and_keeps_the_usual_wait(ray, tmp_path, monkeypatch):
    monkeypatch.delenv(ray_ops.DASHBOARD_START_ENV, raising=False)
    ray["outcomes"] = [None]
    _start(tmp_path, container=bootstrap.WORKER_CONTAINER)
    assert ray_ops.DASHBOARD_START_ENV not in ray["spawned"]["env"] and "timeout" not in ray["spawned"]


def test_a_bound_that_is_not_whole_seconds_is_refused_by_name_before_anything_starts(ray, tmp_path, monkeypatch):
    monkeypatch.setenv(ray_ops.DASHBOARD_START_ENV, "1.5")
    with pytest.raises(ValueError, match=rf"^\${ray_ops.DASHBOARD_START_ENV} must be a whole number of seconds"):
        _start(tmp_path)
    assert ray["calls"] == []
