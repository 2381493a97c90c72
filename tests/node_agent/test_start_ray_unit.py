"""The node agent's local mode starts a Ray node again when Ray says it timed out during startup (its raylet
gave up waiting for an agent on a busy machine), as Docker's restart policy does for the containers on a VM;
any other failure fails at once. Ray is replaced by a record of the starts and stops."""
from __future__ import annotations

import argparse

import pytest

from rayserve_pulumi.node_agent import bootstrap, procs, ray_ops

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


def _start(tmp_path) -> None:
    args = argparse.Namespace(mode="local", state_dir=str(tmp_path), serve_env=[], auth_mode="disabled")
    bootstrap.start_ray(args, ["start", "--head"], {}, bootstrap.HEAD_CONTAINER, None)


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
