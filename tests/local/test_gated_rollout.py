"""Gated rollouts on the local platform, for real: a team's app (the own-app example, copied outside the
checkout, on free ports) gets new code under loopback load, and `rayserve up` moves traffic to it in steps
(rollout.steps) through a splitter, watched by the gate: a good version ends serving with no failed request;
one failing 20 % of its requests, one whose replicas never become healthy, and one 3x slower are rolled back on
their own, `up` exits 1 naming the threshold and the value, and the previous version answers every request
afterwards."""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bench.rollout_bench import ROLLOUT, own_app_up, three_times_slower_delay, variant as _code
from rayserve_pulumi.local.args import RUN_DIR
from rayserve_pulumi.local.cli import State
from rayserve_pulumi.node_agent import ray_ops
from tests.helpers import REPORTS, post, under_load

pytestmark = [pytest.mark.ray, pytest.mark.timed]  # judges p99 against the previous version's


@pytest.fixture(scope="module")
def shop():
    with tempfile.TemporaryDirectory(prefix="shop-rollout-") as folder, own_app_up(Path(folder)) as app:
        yield {**app, "state": app["project"] / ".pulumi-state" / "local-direct.json"}


def _roll_out(shop, code: str, accepted: tuple[str, ...], name: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`up` with `code` in the app's folder under load of 8 connections; answers must be one of `accepted`."""
    shop["echo"].write_text(code)
    result: dict = {}
    started = time.monotonic()
    report = under_load(shop["out"]["app_urls"]["echo"], "x", lambda answer: answer in accepted,
                        action=lambda: result.update(up=shop["run"]("up")), recovered=lambda: True, connections=8)
    report["up_s"] = round(time.monotonic() - started, 1)
    REPORTS[f"gated rollout: {name}"] = report
    return result["up"], report


def _roll_out_bad(shop, code: str, name: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`_roll_out` of a version that must be rolled back; the app's folder holds the serving code afterwards."""
    good = shop["echo"].read_text()
    try:
        return _roll_out(shop, code, ("hello, X?",), name)
    finally:
        shop["echo"].write_text(good)


def _previous_answers_every_request(shop, up: subprocess.CompletedProcess, answer: str) -> None:
    assert [post(shop["out"]["app_urls"]["echo"], "x") for _ in range(20)] == [answer] * 20
    names = set(ray_ops.applications(shop["out"]["dashboard"]))
    assert names == {"echo"}, (names, up.stderr[-3000:])  # the new version and the splitter are gone


def test_a_good_version_takes_every_request_in_steps_with_none_failed(shop):
    up, report = _roll_out(shop, _code("?"), ("hello, X!", "hello, X?"), "good version")
    assert up.returncode == 0, up.stderr[-3000:]
    for line in ("rollout: new version of echo beside the running one", "rollout: 5 % of traffic on the new version",
                 "rollout: 100 % of traffic on the new version", "rollout: the new version serves every request"):
        assert line in up.stderr, up.stderr[-3000:]
    assert report["failed"] == 0, report
    assert [post(shop["out"]["app_urls"]["echo"], "x") for _ in range(20)] == ["hello, X?"] * 20
    assert set(ray_ops.applications(shop["out"]["dashboard"])) == {"echo"}
    # the app now imports its version's copy, not app_dir: what a later rollback needs
    applied = State(shop["state"]).load()["outs"]
    copy = shop["project"] / RUN_DIR / "shop" / "code" / applied["code_version"]
    assert (copy / "shop" / "echo.py").read_text() == shop["echo"].read_text()


def test_a_version_failing_a_fifth_of_its_requests_is_rolled_back_on_its_error_rate(shop):
    up, report = _roll_out_bad(shop, _code("?", fail_rate=0.2), "20 % errors")
    assert up.returncode == 1, up.stderr[-3000:]
    last = up.stderr.strip().splitlines()[-1]
    assert "rolled back at " in last and "%: echo: error rate" in last and "(threshold 0.01)" in last, last
    assert report["failed"] <= 0.01 * report["sent"], report  # at most 1 % of every request sent meanwhile
    _previous_answers_every_request(shop, up, "hello, X?")
    assert "the last up rolled back" in shop["run"]("status").stdout


def test_a_version_never_healthy_is_rolled_back_within_the_budget_and_nothing_fails(shop):
    up, report = _roll_out_bad(shop, _code("?", unhealthy=True), "never healthy")
    assert up.returncode == 1, up.stderr[-3000:]
    last = up.stderr.strip().splitlines()[-1]
    # given up when the step budget ran out, or before, when Serve gave up on the replicas (DEPLOY_FAILED);
    # the bench prints how long `up` took, the clean-up included
    assert "the new version never became healthy" in last, last
    assert f"the step budget of {ROLLOUT['step_budget_s']:g} s" in last, last
    assert report["failed"] == 0, report
    _previous_answers_every_request(shop, up, "hello, X?")


def test_a_version_three_times_slower_is_rolled_back_on_latency(shop):
    delay_s = three_times_slower_delay(shop["out"]["app_urls"]["echo"])  # 3x the serving p99, measured now
    up, report = _roll_out_bad(shop, _code("?", delay_s=delay_s), "3x slower")
    report["handler_delay_s"] = delay_s
    assert up.returncode == 1, up.stderr[-3000:]
    last = up.stderr.strip().splitlines()[-1]
    assert "p99 latency over the previous version's" in last and "(threshold 2)" in last, last
    assert report["failed"] == 0, report
    _previous_answers_every_request(shop, up, "hello, X?")
