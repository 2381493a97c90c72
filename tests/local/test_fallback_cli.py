"""The main job without a Pulumi CLI (`scripts/up.sh` runs this): the local resource's lifecycle as the
engine would run it, each step a real `rayserve` process against a real Ray."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from rayserve_pulumi import cli as rayserve_cli
from rayserve_pulumi.local import lifecycle
from rayserve_pulumi.local.args import RUN_DIR
from rayserve_pulumi.local.cli import State
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.observability import prometheus
from tests.helpers import free_local_ports, free_port, post, replica_pids
from tests.pulumi_harness import stack_values

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("fallback")
    values = stack_values("local")
    values["local"] = {**values["local"], **free_local_ports()}
    values["serve"] = {"applications": ["fruit", "calc"], "http_port": free_port()}
    values["metrics"] = {**values.get("metrics", {}), "prometheus_port": free_port()}
    files = {"stack": base / "Pulumi.local.yaml", "state": base / "state.json", "values": values,
             # the program directory is this test's own, so is the head's PID file (never a user's stack's)
             "pid": base / RUN_DIR / values.get("name", "rayserve") / "ray-head.pid"}

    def write(values: dict) -> None:
        files["stack"].write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in values.items()}}))

    def run(action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rayserve_pulumi.cli", action,
                               str(files["stack"]), "--state", str(files["state"]), "--program-dir", str(base)],
                              capture_output=True, text=True, timeout=600)

    files.update(write=write, run=run)
    write(values)
    try:
        yield files
    finally:
        run("destroy")  # removes the head's Ray temp dir too, if a head is still recorded
        ray_ops.stop(files["pid"])
        procs.stop(files["pid"].with_name("prometheus.pid"))
        # a head that refresh forgot: destroy had nothing recorded to remove
        prometheus.remove_ray_temp_dir(lifecycle.ray_temp_dir({"run_dir": str(files["pid"].parent)}))


def _created(stack) -> str:
    """The dashboard of the stack the first test created. The tests after it are steps of one stack's life:
    where that create failed (its own failure says why), they skip instead of failing on its absence."""
    if "dash" not in stack:
        pytest.skip("the stack was not created: see test_up_creates_with_progress_then_a_serve_only_change_...")
    return stack["dash"]


def _with(values: dict, **local) -> dict:
    return {**values, "local": {**values["local"], **local}}


def _price(values: dict, price) -> dict:
    return {**values, "serve": {**values["serve"], "overrides": {"fruit": {"MangoStand": {"user_config": {"price": price}}}}}}


def test_up_creates_with_progress_then_a_serve_only_change_updates_in_place(stack):
    first = stack["run"]("up")
    assert first.returncode == 0, first.stderr[-2000:]
    out = json.loads(first.stdout)
    for line in ("local: creating", "local: starting the Ray head", "serve: fruit RUNNING (FruitMarket 1/1",
                 "serve: every application RUNNING after"):
        assert line in first.stderr, first.stderr
    stack.update(out=out, dash=out["dashboard"])
    assert post(out["app_urls"]["fruit"], ["MANGO", 2]) == 6
    assert out["prometheus"] == f"http://127.0.0.1:{stack['values']['metrics']['prometheus_port']}"  # metrics on
    assert ray_ops.http_ok(out["prometheus"] + "/-/ready")
    pids = replica_pids(out["dashboard"], "fruit", "MangoStand")

    stack["write"](_price(stack["values"], 5))
    second = stack["run"]("up")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "local: updating Serve in place" in second.stderr and "starting the Ray head" not in second.stderr
    assert "plan: fruit/MangoStand: in place (reconfigure) (user_config), peak +0 replicas" in second.stderr
    assert post(out["app_urls"]["fruit"], ["MANGO", 2]) == 10
    assert replica_pids(out["dashboard"], "fruit", "MangoStand") == pids  # the same replica processes
    state = json.loads(stack["state"].read_text())
    assert json.loads(state["outs"]["serve_config_json"])["applications"][0]["deployments"][1]["user_config"] == {"price": 5}

    third = stack["run"]("up")
    assert third.returncode == 0 and "local: no changes" in third.stderr


def test_an_invalid_config_is_one_line_and_touches_nothing(stack):
    pids = replica_pids(_created(stack), "fruit", "MangoStand")
    stack["write"](_with(_price(stack["values"], 5), num_cpus=True))
    bad = stack["run"]("up")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"{stack['stack']}: rayserve:local.num_cpus: Input should be a valid integer (got True)"]
    assert post(stack["out"]["app_urls"]["fruit"], ["MANGO", 2]) == 10
    assert replica_pids(stack["dash"], "fruit", "MangoStand") == pids


def test_price_abc_is_refused_before_deploy_and_touches_nothing(stack):
    """A stand's user_config is typed (its reconfigure annotates StandConfig): `up` refuses it by name."""
    pids = replica_pids(_created(stack), "fruit", "MangoStand")
    stack["write"](_price(stack["values"], "abc"))
    failed = stack["run"]("up")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"{stack['stack']}: serve config applications[fruit].deployments[MangoStand].user_config.price: Input should "
        "be a valid number (got 'abc')"]
    assert replica_pids(stack["dash"], "fruit", "MangoStand") == pids
    stack["write"](_price(stack["values"], 5))
    assert stack["run"]("up").returncode == 0
    assert post(stack["out"]["app_urls"]["fruit"], ["MANGO", 2]) == 10


def test_status_shows_each_application_and_deployment(stack, capsys):
    _created(stack)
    assert rayserve_cli.main(["status", str(stack["stack"]), "--program-dir", str(stack["stack"].parent)]) == 0
    out = capsys.readouterr().out
    assert "fruit: RUNNING" in out and "  MangoStand: HEALTHY 1/1 replicas" in out and "calc: RUNNING" in out
    assert rayserve_cli.main(["status", str(stack["stack"]), "--json",
                              "--program-dir", str(stack["stack"].parent)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["healthy"] is True and shown["running"] is True
    assert shown["applications"]["fruit"]["deployments"]["MangoStand"] == {
        "status": "HEALTHY", "running": 1, "target": 1, "message": None}


def test_refresh_notices_drift_and_up_repairs_it(stack):
    ray_ops.delete_apps(_created(stack))  # someone removed the applications behind the stack's back
    refreshed = stack["run"]("refresh")
    assert refreshed.returncode == 0 and json.loads(refreshed.stdout)["drifted"] is True
    repaired = stack["run"]("up")
    assert repaired.returncode == 0 and "local: updating Serve in place" in repaired.stderr
    assert post(stack["out"]["app_urls"]["fruit"], ["MANGO", 2]) == 10


def test_a_head_setting_change_replaces_ray_with_the_new_cpu_count(stack):
    _created(stack)
    stack["write"](_with(_price(stack["values"], 5), num_cpus=3))
    replaced = stack["run"]("up")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "local: replacing the Ray head (num_cpus changed)" in replaced.stderr
    assert "plan: Ray head: new Ray head (num_cpus)" in replaced.stderr
    assert "local: starting the Ray head (127.0.0.1, 3 CPUs" in replaced.stderr
    nodes = ray_ops.api_get(stack["dash"], "/nodes?view=summary")["data"]["summary"]
    assert [n["raylet"]["resourcesTotal"]["CPU"] for n in nodes if n["raylet"]["state"] == "ALIVE"] == [3.0]
    assert post(stack["out"]["app_urls"]["fruit"], ["MANGO", 2]) == 10


def test_refresh_after_ray_stops_reports_it_gone(stack, capsys):
    _created(stack)
    assert ray_ops.stop(stack["pid"])
    gone = stack["run"]("refresh")
    assert gone.returncode == 0 and json.loads(gone.stdout) == {"gone": True}
    state = State(stack["state"])
    assert state.load() is None and state.verdict()  # the head is forgotten, the config's verdict kept
    assert rayserve_cli.main(["status", str(stack["stack"]), "--program-dir", str(stack["stack"].parent)]) == 1
    assert "no Ray head answers" in capsys.readouterr().out
