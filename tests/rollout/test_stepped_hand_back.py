"""The stepped rollout's hand-back, without Ray: whatever stops a rollout midway (the splitter or the dashboard
not answering, a deploy refused) puts the running version back on every request before `up` fails, as a
gate breach does. Serve is replaced by a record of the configs deployed; the real-Ray path is
tests/local/test_gated_rollout.py."""
from __future__ import annotations

import contextlib
import urllib.error

import pytest

from rayserve_pulumi.rollout import stepped
from rayserve_pulumi.rollout.splitter import SPLITTER_PARKED
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


def _rollout(monkeypatch, stats, live: dict = LIVE, target: dict = TARGET) -> Stepped:
    rollout = Stepped("http://127.0.0.1:1", "http://127.0.0.1:2", live, target,
                      gate.Thresholds(watch_s=0.5, step_budget_s=5, min_requests=1), [5, 100], lambda line: None)
    monkeypatch.setattr(rollout, "_wait_stats", lambda name, percent, timeout=30: {
        "next_percent": percent, "next": COUNTS, "previous": COUNTS})
    monkeypatch.setattr(rollout, "_stats", stats)
    monkeypatch.setattr(rollout, "_idle", lambda timeout=60: None)
    monkeypatch.setattr(rollout, "_wait_routes", lambda config, timeout=30: None)  # no proxy to ask
    monkeypatch.setattr(rollout, "_drained", lambda routes, timeout=60: None)
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


ROOT_LIVE = {"applications": [{"name": "home", "route_prefix": "/", "import_path": "shop.home:app",
                               "runtime_env": {"env_vars": {"PYTHONPATH": "/run/code/v1"}}}, *LIVE["applications"]]}
ROOT_TARGET = {"applications": [{**a, "runtime_env": {"env_vars": {"PYTHONPATH": "/run/code/v2"}}}
                                for a in ROOT_LIVE["applications"]]}


def _routes(config: dict) -> dict[str, str]:
    routes = {a["name"]: a["route_prefix"] for a in config["applications"]}
    assert len(set(routes.values())) == len(routes), routes  # Serve refuses a config with a route twice
    assert "/" in routes.values(), routes  # some application always serves what falls under `/`
    return routes


@pytest.mark.parametrize("stats", ["answering", "unreachable"])
def test_an_application_at_the_root_route_is_stepped_with_the_splitter_parked_while_it_holds_it(serve, monkeypatch, stats):
    """The splitter takes `/` in the deploy that moves the application off it, before any other route moves,
    and gives it back after every other route is back: every config Serve is given has one application at
    `/`, none has two, and no application is off its route while `/` is the application's."""
    def answering(name):
        return {"next_percent": 5, "next": COUNTS, "previous": COUNTS}

    def unreachable(name):
        raise urllib.error.URLError("connection refused")

    rollout = _rollout(monkeypatch, answering if stats == "answering" else unreachable, ROOT_LIVE, ROOT_TARGET)
    assert Stepped.possible(ROOT_LIVE) is None
    if stats == "answering":
        rollout.run()
        assert serve[-1] == ROOT_TARGET
    else:
        with pytest.raises(RolloutFailed):
            rollout.run()
        assert serve[-1] == ROOT_LIVE
    routes = [_routes(config) for config in serve]
    assert routes[0] == {"home": "/", "home" + SIDE: "/_rollout/next-root", "echo": "/echo",
                         "echo" + SIDE: "/_rollout/next/echo", SPLIT: SPLITTER_PARKED}  # beside: parked
    assert routes[1] == {"home": "/_rollout/previous-root", "home" + SIDE: "/_rollout/next-root", "echo": "/echo",
                         "echo" + SIDE: "/_rollout/next/echo", SPLIT: "/"}  # the first step: one deploy swaps both
    assert routes[2] == {**routes[1], "echo": "/_rollout/previous/echo"}  # then the others move
    back = next(i for i in range(2, len(routes)) if routes[i].get("home") == "/")  # handed back, parked again
    assert routes[back][SPLIT] == SPLITTER_PARKED and routes[back - 1]["echo"] == "/echo"
    assert routes[back - 1][SPLIT] == "/" and routes[back - 1]["home"] == "/_rollout/previous-root"
    for r in routes:  # wherever `/` is the application's, every other application is at its own route
        assert r.get("home") != "/" or r["echo"] == "/echo", r


def test_an_unchanged_application_at_the_root_route_stops_a_rollout_of_the_others():
    assert "application home serves / and its code is unchanged" in Stepped.possible(ROOT_LIVE, ["echo"])
    assert Stepped.possible(ROOT_LIVE, ["home", "echo"]) is None


def test_an_application_under_the_rollouts_own_routes_stops_a_rollout():
    live = {"applications": [{**LIVE["applications"][0], "route_prefix": "/_rollout/echo"}]}
    assert Stepped.possible(live) == "application echo serves /_rollout/echo, under the rollout's own /_rollout"


def test_a_splitter_that_cut_the_new_version_off_rolls_the_step_back_on_the_error_rate(serve, monkeypatch):
    """The splitter's own cut-off (rollout.splitter) is a breach of the error rate, whatever the gate's window
    from the step's start holds (here: nothing yet)."""
    tripped = {"next_percent": 5, "tripped": True, "next": {**COUNTS, "requests": 2, "errors": 1}, "previous": COUNTS}
    rollout = _rollout(monkeypatch, lambda name: tripped)
    with pytest.raises(RolloutFailed, match=r"rolled back at 5 %: echo: error rate 0\.5 \(threshold 0\.01\)"):
        rollout.run()
    assert serve[-1] == LIVE
    splitter = next(a for a in serve[0]["applications"] if a["name"] == SPLIT)
    assert (splitter["args"]["max_error_rate"], splitter["args"]["min_requests"]) == (0.01, 1)  # the gate's


@pytest.mark.parametrize("stats", ["answering", "unreachable"])
def test_under_haproxy_every_application_whose_route_changes_is_held_off_haproxy_for_that_deploy(serve, monkeypatch,
                                                                                                 stats):
    """rollout.ingress_hold around each deploy that changes routes: every application whose route it changes (the
    splitter too), on this host's HAProxy and on the other node's, released once routes and replicas are there;
    nothing held for a deploy that moves no route, nor without an HAProxy socket (Serve's own proxy). Each release
    names the held backends' new routes, which their replicas must serve first."""
    events = []
    monkeypatch.setattr(ray_ops, "status", lambda dash: {"proxies": {"n1": {}, "n2": {}}})  # two nodes' ingresses
    monkeypatch.setattr(stepped.ingress_hold, "node_sockets", lambda template, nodes: [
        f"/tmp/hap/{n}/admin.sock" for n in nodes if n == "n1"])  # n1's socket is on this host, n2's is not
    monkeypatch.setattr(stepped.ingress_hold, "hold", lambda sockets, apps, report: (
        events.append(("hold", len(serve), sockets, sorted(apps))) or [f"held {sorted(apps)}"]))
    monkeypatch.setattr(stepped.ingress_hold, "release", lambda held, report, routes: events.append(
        ("release", len(serve), held, routes)))
    monkeypatch.setattr(stepped.ingress_hold_remote.Remote, "hold", lambda self, nodes, template, apps: (
        events.append(("hold elsewhere", len(serve), list(nodes), sorted(apps))) or {"n2": [f"held {sorted(apps)}"]}))
    monkeypatch.setattr(stepped.ingress_hold_remote.Remote, "release", lambda self, held, routes: events.append(
        ("release elsewhere", len(serve), held, routes)))

    def answering(name):
        return {"next_percent": 5, "next": COUNTS, "previous": COUNTS}

    def unreachable(name):
        raise urllib.error.URLError("connection refused")

    rollout = _rollout(monkeypatch, answering if stats == "answering" else unreachable, ROOT_LIVE, ROOT_TARGET)
    rollout.haproxy_socket = "/tmp/hap/admin.sock"
    with pytest.raises(RolloutFailed) if stats == "unreachable" else contextlib.nullcontext():
        rollout.run()
    expected = []
    for i in range(1, len(serve)):
        before = {a["name"]: a["route_prefix"] for a in serve[i - 1]["applications"]}
        moved = sorted(a["name"] for a in serve[i]["applications"]
                       if a["name"] in before and before[a["name"]] != a["route_prefix"])
        if moved:  # held before deploy i (i deploys sent so far), released after it once at their new routes
            routes = {f"http-{a['name']}": a["route_prefix"] for a in serve[i]["applications"] if a["name"] in moved}
            expected += [("hold", i, ["/tmp/hap/n1/admin.sock"], moved), ("hold elsewhere", i, ["n2"], moved),
                         ("release", i + 1, [f"held {moved}"], routes),
                         ("release elsewhere", i + 1, {"n2": [f"held {moved}"]}, routes)]
    assert events == expected
    moves = [e[3] for e in events if e[0] == "hold"]
    assert moves[:2] == [["home", SPLIT], ["echo"]] and moves[-1] == ["home", SPLIT], moves  # `/` both ways

    serve.clear(), events.clear()
    plain = _rollout(monkeypatch, answering if stats == "answering" else unreachable, ROOT_LIVE, ROOT_TARGET)
    with pytest.raises(RolloutFailed) if stats == "unreachable" else contextlib.nullcontext():
        plain.run()
    assert events == []
