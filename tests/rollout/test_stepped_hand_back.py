"""The stepped rollout's hand-back, without Ray: whatever stops a rollout midway (the splitter or the dashboard
not answering, a deploy refused) puts the running version back on every request before `up` fails, as a
gate breach does. Serve is replaced by a record of the configs deployed; the real-Ray path is
tests/local/test_gated_rollout.py."""
from __future__ import annotations

import urllib.error

import pytest

from rayserve_pulumi.rollout import stepped
from rayserve_pulumi.rollout.stepped import SIDE, SPLIT, RolloutFailed, Stepped
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.rollout import gate

LIVE = {"applications": [{"name": "echo", "route_prefix": "/echo", "import_path": "shop.echo:app",
                          "runtime_env": {"env_vars": {"PYTHONPATH": "/run/code/v1"}}}]}
TARGET = {"applications": [{**LIVE["applications"][0], "runtime_env": {"env_vars": {"PYTHONPATH": "/run/code/v2"}}}]}
COUNTS = {"requests": 0, "errors": 0, "buckets": {}}


@pytest.fixture()
def serve(monkeypatch):
    """Serve as the configs deployed to it, every application RUNNING at once."""
    deployed: list[dict] = []
    monkeypatch.setattr(ray_ops, "deploy", lambda dash, config: deployed.append(config))
    monkeypatch.setattr(ray_ops, "wait_running", lambda *args, **kwargs: None)
    monkeypatch.setattr(ray_ops, "applications", lambda dash: {
        a["name"]: {"status": "RUNNING"} for a in (deployed[-1]["applications"] if deployed else [])})
    return deployed


def _rollout(monkeypatch, stats) -> Stepped:
    rollout = Stepped("http://127.0.0.1:1", "http://127.0.0.1:2", LIVE, TARGET,
                      gate.Thresholds(watch_s=0.5, step_budget_s=5, min_requests=1), [5, 100], lambda line: None)
    monkeypatch.setattr(rollout, "_wait_stats", lambda name, percent, timeout=30: {
        "next_percent": percent, "next": COUNTS, "previous": COUNTS})
    monkeypatch.setattr(rollout, "_stats", stats)
    monkeypatch.setattr(rollout, "_idle", lambda timeout=60: None)
    monkeypatch.setattr(stepped.time, "sleep", lambda s: None)
    return rollout


def test_a_splitter_that_stops_answering_mid_rollout_hands_every_request_back(serve, monkeypatch):
    def unreachable(name):
        raise urllib.error.URLError("connection refused")

    with pytest.raises(RolloutFailed, match=r"stopped at 5 % by URLError: .*connection refused"):
        _rollout(monkeypatch, unreachable).run()
    assert serve[-1] == LIVE  # the running version, exactly as it was, serves every request
    # on the way back, traffic left the new version before anything else changed
    splitter = next(a for a in serve[-3]["applications"] if a["name"] == SPLIT)
    assert splitter["deployments"][0]["user_config"] == {"next_percent": 0}


def test_a_hand_back_that_fails_too_names_both_causes(serve, monkeypatch):
    def unreachable(name):
        raise urllib.error.URLError("connection refused")

    def refused(dash, config):
        if config is LIVE:
            raise ray_ops.ServeDeployError("Serve could not deploy: the dashboard is gone")
        serve.append(config)

    monkeypatch.setattr(ray_ops, "deploy", refused)
    with pytest.raises(RuntimeError) as caught:
        _rollout(monkeypatch, unreachable).run()
    message = str(caught.value)
    assert not isinstance(caught.value, RolloutFailed)  # the previous version may not be serving: not a rollback
    assert "stopped at 5 % by URLError" in message and "handing back failed too" in message
    assert "the dashboard is gone" in message and "\n" not in message
    assert any(a["name"] == "echo" + SIDE for a in serve[-1]["applications"])


def test_only_applications_whose_code_changed_are_stepped():
    other = {"name": "calc", "route_prefix": "/calc", "import_path": "shop.calc:app"}
    live = {"applications": [*LIVE["applications"], other]}
    target = {"applications": [*TARGET["applications"], {**other, "deployments": [{"name": "Calc", "num_replicas": 2}]},
                               {"name": "new", "route_prefix": "/new", "import_path": "shop.new:app"}]}
    assert stepped.code_changed(live, target) == ["echo"]  # calc's config alone changed; new is new
    assert stepped.code_changed(live, {"applications": [{**other, "import_path": "shop.calc2:app"}]}) == ["calc"]
    rollout = Stepped("d", "u", live, target, gate.Thresholds(), [100], print, stepped.code_changed(live, target))
    assert rollout.names == ["echo"]
    config = rollout._config("live", 5)
    assert [a["name"] for a in config["applications"]] == ["echo", "echo" + SIDE, "calc", SPLIT]
    assert next(a for a in config["applications"] if a["name"] == "calc") == other  # as it runs, at its route
