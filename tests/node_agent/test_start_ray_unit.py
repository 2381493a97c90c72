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


def _start(tmp_path, *options: str) -> None:
    bootstrap.start_ray(_args(tmp_path, *options), ["start", "--head"], {}, bootstrap.HEAD_CONTAINER, None)


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
