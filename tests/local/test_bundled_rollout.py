"""The bundled apps' gated rollout, for real: a package upgrade that changes their code (here the installed
serve_apps swapped for a changed copy) goes out beside the running version as a team's apps do, gated; a bad
version is rolled back to the previous bundled code, kept as a copy, and a good one takes every request with
none failed. calc serves `/`, where the splitter goes: its traffic passes to the splitter and back without a
failed request, and no request of /fruit ever reaches it. Under Serve's HAProxy ingress, the shipped
default, whose replicas the rollout holds off HAProxy while their routes move (rollout.ingress_hold, kept
through HAProxy's reloads; docs/rollouts.md "Under Serve's HAProxy ingress")."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from bench.loadgen import Load
from rayserve_pulumi.config import LocalSettings, ServeSettings, app_code, build_serve_config
from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.local.lifecycle import RolledBack
from rayserve_pulumi.local.rollout import code_copy
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.rollout.settings import RolloutSettings
from tests.helpers import REPORTS, free_local_ports, free_port, local_head, under_load

pytestmark = pytest.mark.ray
BOUND_S = 120
MANGO, ADD = (["MANGO", 1], 3), (["ADD", 3], "6 pizzas please!")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    serve = ServeSettings(applications=["fruit", "calc"], http_port=free_port())
    assert serve.proxy == "haproxy"  # the shipped default
    config = build_serve_config(serve)
    next(a for a in config["applications"] if a["name"] == "calc")["route_prefix"] = "/"
    props = provider_inputs(LocalSettings(**free_local_ports(), num_cpus=2), config,
                            str(tmp_path_factory.mktemp("run")), serve.runtime_env())
    with local_head(props) as (provider, result):
        yield {"provider": provider, "id": result.id, "outs": result.outs}


def _answers(url: str, body_and_answer) -> bool:
    body, answer = body_and_answer
    try:
        return requests.post(url, json=body, timeout=5).json() == answer
    except (requests.RequestException, ValueError):
        return False


PRICE_LINE = "return [self.price * amount for amount in amounts]"  # the stands' pricing, in fruit.py


def _imports_from(dash: str) -> set:
    """Where fruit's and calc's workers import their code from (their runtime_env's PYTHONPATH)."""
    apps = ray_ops.status(dash)["applications"]
    return {apps[n]["deployed_app_config"]["runtime_env"]["env_vars"]["PYTHONPATH"] for n in ("fruit", "calc")}


def _upgrade(cluster, folder, monkeypatch, price_line: str, accepted: tuple,
             rollout: RolloutSettings) -> tuple[dict, dict, dict, Path]:
    """Install bundled apps whose stands price with `price_line` (a copy of the installed ones, in `folder`),
    then `update` the stack to them with 8 connections on /fruit (answers in `accepted`) and 4 on calc at
    `/`: (the update's outcome, /fruit's report, calc's report, the changed fruit.py)."""
    outs = cluster["outs"]
    urls = outs["app_urls"]
    shutil.copytree(app_code.bundled_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    fruit = folder / "fruit.py"
    assert PRICE_LINE in fruit.read_text()
    fruit.write_text(fruit.read_text().replace(PRICE_LINE, price_line))
    monkeypatch.setattr(app_code, "bundled_dir", lambda: folder)  # what an upgrade of the package installed
    news = {**outs, "code_version": AppCode.bundled_apps().digest()[:16],
            "rollout": rollout.inputs()}
    assert news["code_version"] != outs["code_version"]
    outcome = {}

    def upgrade():
        try:
            outcome["outs"] = cluster["provider"].update(cluster["id"], outs, news).outs
        except RolledBack as exc:
            outcome["rolled_back"] = str(exc)

    body, answer = ADD
    with Load(urls["calc"], body, connections=4, duration_s=60 + BOUND_S + 10, check=lambda a: a == answer) as root:
        root.wait_answered(4, timeout_s=60)
        report = under_load(urls["fruit"], MANGO[0], lambda a: a in accepted, upgrade,
                            lambda: bool(outcome) and _answers(urls["fruit"], (MANGO[0], accepted[-1])), BOUND_S, 8)
        root.finish_in(1)
    return outcome, report, root.result.summary(), fruit


def test_an_upgrade_whose_bundled_apps_fail_is_rolled_back_to_the_previous_bundled_code(cluster, tmp_path, monkeypatch):
    outs, dash = cluster["outs"], cluster["outs"]["dashboard_url"]
    assert urlsplit(outs["app_urls"]["calc"]).path == "/"
    running = code_copy(outs["run_dir"], outs["code_version"])
    assert _imports_from(dash) == {str(running)}  # the bundled apps run from their version's copy

    outcome, report, at_root, fruit = _upgrade(cluster, tmp_path / "serve_apps", monkeypatch,
                                               'raise RuntimeError("this version fails every price")', (MANGO[1],),
                                               RolloutSettings(steps=[5, 100], watch_s=2))
    REPORTS["bundled apps upgraded to a failing version (gated, rolled back)"] = {**report, "calc_at_root": at_root}
    assert "error rate" in outcome.get("rolled_back", ""), (outcome, report)
    assert report["failed"] <= 0.01 * report["sent"], report  # the new fruit failed only its share of one step
    assert set(report["errors"]) == {"HTTP 500"}, report  # its failures; none reached calc ("unknown operation")
    assert at_root["failed"] == 0, at_root  # `/` went to the splitter and back with nothing dropped
    assert _answers(outs["app_urls"]["fruit"], MANGO) and _answers(outs["app_urls"]["calc"], ADD)
    assert set(ray_ops.applications(dash)) == {"fruit", "calc"}
    assert _imports_from(dash) == {str(running)}  # the previous copy, not the installed (bad) apps
    tried = code_copy(outs["run_dir"], AppCode.bundled_apps().digest()[:16])
    assert (tried / "rayserve_pulumi" / "serve_apps" / "fruit.py").read_text() == fruit.read_text()


def test_an_upgrade_with_good_bundled_apps_goes_out_in_steps_with_no_failed_request(cluster, tmp_path, monkeypatch):
    dash = cluster["outs"]["dashboard_url"]
    outcome, report, at_root, _ = _upgrade(cluster, tmp_path / "serve_apps", monkeypatch,
                                           "return [self.price * amount + 1 for amount in amounts]",
                                           (MANGO[1], MANGO[1] + 1),
                                           # half the traffic at once, so each version soon has min_requests; the
                                           # latency gate is tests/local/test_gated_rollout.py's (timed)
                                           RolloutSettings(steps=[50, 100], watch_s=2, max_p99_ratio=10))
    REPORTS["bundled apps upgraded to a good version (gated)"] = {**report, "calc_at_root": at_root}
    assert "outs" in outcome, outcome
    cluster["outs"] = outs = outcome["outs"]
    assert report["failed"] == 0 and at_root["failed"] == 0, (report, at_root)
    assert _answers(outs["app_urls"]["fruit"], (MANGO[0], MANGO[1] + 1)) and _answers(outs["app_urls"]["calc"], ADD)
    assert set(ray_ops.applications(dash)) == {"fruit", "calc"}  # the side versions and the splitter are gone
    assert _imports_from(dash) == {str(code_copy(outs["run_dir"], outs["code_version"]))}
