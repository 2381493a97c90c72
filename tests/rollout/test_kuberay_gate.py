"""The KubeRay rollout gate (rollout.kuberay_gate) against scripted incremental upgrades: the RayService's status as
KubeRay v1.7.0 reports it step by step, and both clusters' Serve counters as Prometheus would sum them, for a good
version, one failing 20 % of its requests, one 3x slower, one never healthy, and a Prometheus that does not answer.
The API server and Prometheus are served over HTTP on 127.0.0.1, so the gate's own clients (KubeApi, Prometheus)
do the talking; the gate's PromQL is checked by Prometheus' own engine (promtool)."""
from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from rayserve_pulumi.constants import ROLLOUT_REASON_ANNOTATION, ROLLOUT_VERDICT_ANNOTATION, SPEC_VERSION_ANNOTATION
from rayserve_pulumi.rollout import gate
from rayserve_pulumi.rollout.kuberay_gate import (
    LAST_GOOD_KEYS, PROMOTED, ROLLED_BACK, Gate, KubeApi, Prometheus, last_good_name, observe, queries,
)

NAME, NS = "rayserve", "ray"
OLD, NEW = "rayserve-old7x", "rayserve-new9q"  # the clusters KubeRay named
V_OLD, V_NEW, V_NEWER = "1111aaaa1111aaaa", "2222bbbb2222bbbb", "3333cccc3333cccc"
SPEC = {v: {"serveConfigV2": f"applications: [] # {v}", "rayClusterConfig": {"image": f"apps:{v}"}}
        for v in (V_OLD, V_NEW, V_NEWER)}
BOUNDS = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, math.inf]
FAST = [4.0, 6.0, 8.0, 9.0, 12.0, 20.0]  # ms, cycled through the requests
THRESHOLDS = gate.Thresholds(max_error_rate=0.01, max_p99_ratio=2.0, min_requests=100, watch_s=10, step_budget_s=120)
POLL_S, RATE, STEP, INTERVAL_S = 5.0, 40.0, 20, 30.0  # the gate's poll, requests/s, KubeRay's step and interval


class Counters:
    def __init__(self):
        self.requests = self.errors = 0
        self.buckets = {b: 0 for b in BOUNDS}
        self._i = 0

    def serve(self, n: int, error_rate: float, latencies: list[float]) -> None:
        for _ in range(n):
            self._i += 1
            self.requests += 1
            if error_rate and self._i % round(1 / error_rate) == 0:
                self.errors += 1
            ms = latencies[self._i % len(latencies)]
            for b in BOUNDS:
                if ms <= b:
                    self.buckets[b] += 1


class World:
    """A RayService whose spec just moved from V_OLD to V_NEW (NewClusterWithIncrementalUpgrade), advanced like
    KubeRay would: the new cluster's apps RUNNING after `ready_after_s` (never: None), then STEP % more traffic
    every INTERVAL_S until 100 % promotes it; a spec returned to V_OLD makes KubeRay roll back (RollbackInProgress,
    traffic back in steps, the new cluster removed). Serve counts each cluster's requests."""

    def __init__(self, error_rate=0.0, latencies=FAST, ready_after_s=10.0, last_good=V_OLD):
        self.t, self.error_rate, self.latencies, self.ready_after_s = 0.0, error_rate, latencies, ready_after_s
        self.rs = {"metadata": {"name": NAME, "namespace": NS, "generation": 2, "annotations": {
            SPEC_VERSION_ANNOTATION: V_NEW, ROLLOUT_VERDICT_ANNOTATION: PROMOTED + V_OLD}},
            "spec": copy.deepcopy(SPEC[V_NEW]), "status": {}}
        self.configmap = {"data": dict(zip(LAST_GOOD_KEYS, (last_good, json.dumps(SPEC[last_good]))))} \
            if last_good else {"data": {}}
        self.counters = {OLD: Counters(), NEW: Counters()}
        self.percent, self.moved_at, self.active, self.pending, self.rollback = 0, None, OLD, NEW, False
        self.events, self.patches, self.race_next_patch, self.prometheus_down = [], 0, False, False
        self.tokens: set = set()  # the Authorization headers the API server saw
        self.lock = threading.Lock()
        self._status()

    def _apps(self, cluster) -> dict:
        ready = cluster == self.active or (self.ready_after_s is not None and self.t >= self.ready_after_s)
        return {"fruit": {"status": "RUNNING" if ready else "DEPLOYING"}}

    def _status(self) -> None:
        meta = self.rs["metadata"]
        settled = self.pending is None
        conditions = [{"type": "Ready", "status": "True"},
                      {"type": "UpgradeInProgress", "status": "False" if settled else "True"}]
        if self.rollback:
            conditions.append({"type": "RollbackInProgress", "status": "True"})
        status = {"observedGeneration": meta["generation"], "conditions": conditions,
                  "activeServiceStatus": {"rayClusterName": self.active, "applicationStatuses": self._apps(self.active),
                                          "trafficRoutedPercent": 100 - self.percent}}
        if self.pending:
            status["pendingServiceStatus"] = {"rayClusterName": self.pending, "trafficRoutedPercent": self.percent,
                                              "applicationStatuses": self._apps(self.pending)}
        self.rs["status"] = status

    def advance(self, dt: float) -> None:
        with self.lock:
            self.t += dt
            n = int(RATE * dt)
            to_new = round(n * self.percent / 100)
            self.counters[NEW].serve(to_new, self.error_rate, self.latencies)
            self.counters[OLD].serve(n - to_new, 0.0, FAST)
            if self.pending and self.t - (self.moved_at or 0) >= INTERVAL_S:
                if self.rollback:
                    self.percent, self.moved_at = max(self.percent - STEP, 0), self.t
                    if self.percent == 0:  # rolled back: the new cluster goes
                        self.pending, self.rollback = None, False
                elif self._apps(self.pending)["fruit"]["status"] == "RUNNING":
                    self.percent, self.moved_at = min(self.percent + STEP, 100), self.t
                    if self.percent == 100:  # promoted: the new cluster serves, the old one goes
                        self.active, self.pending, self.percent = self.pending, None, 0
                        self.counters[OLD] = self.counters[NEW]
            self._status()

    def patch(self, ops: list) -> None:
        """RFC 6902 as the API server applies it: all or nothing, a failed `test` refuses the whole patch (422)."""
        with self.lock:
            if self.race_next_patch:  # another `pulumi up` got there first
                self.rs["metadata"]["annotations"][SPEC_VERSION_ANNOTATION] = V_NEWER
                self.rs["spec"] = copy.deepcopy(SPEC[V_NEWER])
                self.race_next_patch = False
            doc = copy.deepcopy(self.rs)
            for op in ops:
                *parents, leaf = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
                target = doc
                for p in parents:
                    target = target[p]
                if op["op"] == "test":
                    if target.get(leaf) != op["value"]:
                        raise ValueError(f"test of {op['path']} failed")
                elif op["op"] in ("add", "replace"):
                    target[leaf] = copy.deepcopy(op["value"])
                else:
                    raise ValueError(f"unexpected op {op['op']}")
            if doc["spec"] != self.rs["spec"]:
                doc["metadata"]["generation"] += 1
                if doc["spec"] == SPEC[V_OLD] and self.pending:  # KubeRay: goal state reverted, roll back
                    self.rollback, self.moved_at = True, self.t
            self.rs, self.patches = doc, self.patches + 1
            self._status()

    def vector(self, query: str) -> list:
        with self.lock:
            for cluster, c in self.counters.items():
                q = queries(cluster)
                if query == q["requests"]:
                    return [{"metric": {}, "value": [self.t, str(c.requests)]}] if c.requests else []
                if query == q["errors"]:
                    return [{"metric": {}, "value": [self.t, str(c.errors)]}] if c.requests else []
                if query == q["buckets"]:
                    return [{"metric": {"le": "+Inf" if b == math.inf else f"{b:g}"}, "value": [self.t, str(v)]}
                            for b, v in c.buckets.items()] if c.requests else []
        raise KeyError(query)


def _serve(world: World):
    rs_path = f"/apis/ray.io/v1/namespaces/{NS}/rayservices/{NAME}"
    cm_path = f"/api/v1/namespaces/{NS}/configmaps/{last_good_name(NAME)}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if not url.path.startswith("/api/v1/query"):
                world.tokens.add(self.headers.get("Authorization"))
            if url.path == rs_path:
                return self._send(200, world.rs)
            if url.path == cm_path:
                return self._send(200, world.configmap)
            if url.path == "/api/v1/query":
                if world.prometheus_down:
                    return self._send(503, {"status": "error", "error": "down"})
                query = urllib.parse.parse_qs(url.query)["query"][0]
                return self._send(200, {"status": "success", "data": {"resultType": "vector",
                                                                      "result": world.vector(query)}})
            self._send(404, {})

        def do_PATCH(self):
            world.tokens.add(self.headers.get("Authorization"))
            path = urllib.parse.urlsplit(self.path).path
            kind = self.headers["Content-Type"]
            if path == rs_path and kind == "application/json-patch+json":
                try:
                    world.patch(self._body())
                except ValueError as exc:
                    return self._send(422, {"message": str(exc)})
                return self._send(200, world.rs)
            if path == cm_path and kind == "application/merge-patch+json":
                world.configmap["data"].update(self._body()["data"])
                return self._send(200, world.configmap)
            self._send(415, {})

        def do_POST(self):
            if self.path == f"/api/v1/namespaces/{NS}/events":
                world.events.append(self._body())
                return self._send(201, {})
            self._send(404, {})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def gate_for(tmp_path):
    """A Gate watching `world` through its HTTP servers (the service account's token in tmp_path)."""
    servers = []

    def make(world: World, log=lambda _: None) -> Gate:
        server = _serve(world)
        servers.append(server)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        (tmp_path / "token").write_text("a-token\n")
        return Gate(THRESHOLDS, KubeApi(NS, NAME, base=base, sa_dir=str(tmp_path)), Prometheus(base),
                    clock=lambda: world.t, log=log)

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def run(gate_for):
    """Polls `world` every POLL_S until it settles with no upgrade left (or `max_s`): what the gate said."""
    def go(world: World, max_s: float = 900.0) -> tuple[list[str], Gate]:
        said = []
        g = gate_for(world, log=said.append)
        while world.t < max_s:
            said.append(g.poll())
            if world.pending is None and not world.rollback and said[-1] in ("settled", "promoted"):
                break
            world.advance(POLL_S)
        return said, g

    return go


def _annotations(world: World) -> dict:
    return world.rs["metadata"]["annotations"]


def test_a_good_version_is_promoted_and_kept_as_the_last_good_spec(run):
    world = World()
    said, _ = run(world)
    assert world.tokens == {"Bearer a-token"}  # the service account's token, on every call to the API server
    assert "rolled back" not in said and world.events == []
    assert world.active == NEW and world.rs["spec"] == SPEC[V_NEW]
    assert _annotations(world)[ROLLOUT_VERDICT_ANNOTATION] == PROMOTED + V_NEW  # what `pulumi up` waits for
    assert world.configmap["data"] == {"version": V_NEW, "spec.json": json.dumps(SPEC[V_NEW], sort_keys=True)}
    assert world.counters[NEW].errors == 0


@pytest.mark.parametrize("kind,version,expected", [
    ("20 % errors", dict(error_rate=0.2), "error rate 0.2 (threshold 0.01) at 20 % of traffic"),
    ("3x slower", dict(latencies=[3 * ms for ms in FAST]), "p99 latency over the previous version's, x 3"),
    ("never healthy", dict(ready_after_s=None), "replicas not healthy within the step budget, s: 120"),
])
def test_a_bad_version_is_returned_to_the_last_good_spec_and_kuberay_rolls_back(run, kind, version, expected):
    world = World(**version)
    said, _ = run(world)
    assert said.count("rolled back") == 1, said
    annotations = _annotations(world)
    assert world.rs["spec"] == SPEC[V_OLD] and annotations[SPEC_VERSION_ANNOTATION] == V_OLD
    assert annotations[ROLLOUT_VERDICT_ANNOTATION] == ROLLED_BACK + V_NEW  # `pulumi up` never sees it promoted
    reason = annotations[ROLLOUT_REASON_ANNOTATION]
    assert expected in reason and reason.endswith(f"the previous version {V_OLD} is serving"), reason
    [event] = world.events
    assert (event["reason"], event["type"], event["message"]) == ("RolledBack", "Warning", reason)
    assert event["involvedObject"]["name"] == NAME
    # KubeRay moved the traffic back and removed the new cluster; the old version serves, still the last good
    assert world.active == OLD and world.pending is None
    assert world.configmap["data"]["version"] == V_OLD
    assert said[-1] == "settled"


def test_a_rollback_on_errors_comes_before_much_traffic_failed(gate_for):
    """The 20 % errors case stopped at the first step: few of all the requests failed."""
    world = World(error_rate=0.2)
    g = gate_for(world)
    while g.poll() != "rolled back":
        world.advance(POLL_S)
        assert world.t < 300
    failed = world.counters[NEW].errors
    sent = world.counters[NEW].requests + world.counters[OLD].requests
    assert 0 < failed / sent < 0.01, (failed, sent)


def test_metrics_unreadable_for_the_step_budget_roll_back_naming_it(run):
    world = World()
    world.prometheus_down = True
    said, _ = run(world)
    assert said.count("metrics unreadable") >= 2 and "rolled back" in said
    assert "Serve's metrics unreadable for 120 s (step budget 120 s): HTTPError" in \
        _annotations(world)[ROLLOUT_REASON_ANNOTATION]


def test_a_newer_spec_applied_meanwhile_is_never_overwritten(gate_for):
    """The rollback's JSON Patch tests the version it read: a `pulumi up` that got there first wins."""
    world = World(error_rate=0.2)
    world.race_next_patch = True
    g = gate_for(world)
    with pytest.raises(urllib.error.HTTPError) as refused:
        while True:
            g.poll()
            world.advance(POLL_S)
            assert world.t < 300
    assert refused.value.code == 422
    assert world.rs["spec"] == SPEC[V_NEWER] and _annotations(world)[SPEC_VERSION_ANNOTATION] == V_NEWER
    assert world.events == []


def test_without_a_last_good_spec_the_upgrade_is_watched_but_not_gated(run):
    world = World(error_rate=0.2, last_good=None)
    said, _ = run(world)
    assert "no last good spec to return to: not gated" in said and "rolled back" not in said
    assert world.active == NEW  # promoted by KubeRay; the gate then keeps it as the last good spec
    assert world.configmap["data"]["version"] == V_NEW


def test_observe_reads_kuberay_status_and_refuses_what_is_not_a_cluster_name():
    world = World()
    obs = observe(world.rs)
    assert (obs.version, obs.active, obs.pending, obs.percent, obs.upgrading, obs.settled) == \
        (V_NEW, OLD, NEW, 0, True, False)
    odd = copy.deepcopy(world.rs)
    odd["status"]["pendingServiceStatus"]["rayClusterName"] = 'x"} or vector(1) #'
    odd["metadata"]["annotations"][SPEC_VERSION_ANNOTATION] = "not-a-version"
    assert (observe(odd).pending, observe(odd).version) == (None, None)


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="needs promtool from Debian's prometheus (scripts/setup.sh installs it)")
def test_the_gates_queries_select_one_cluster_and_its_5xx_in_prometheus_own_engine(tmp_path):
    """Two applications on the new cluster, one on the old; 4xx answers are not failures."""
    def series(name, cluster, values, **labels):
        selector = ",".join(f'{k}="{v}"' for k, v in {"ray_io_cluster": cluster, **labels}.items())
        return {"series": f"{name}{{{selector}}}", "values": values}

    inputs = [series("ray_serve_num_http_requests_total", NEW, "0+10x5", application="fruit"),
              series("ray_serve_num_http_requests_total", NEW, "0+6x5", application="calc"),
              series("ray_serve_num_http_requests_total", OLD, "0+100x5", application="fruit"),
              series("ray_serve_num_http_error_requests_total", NEW, "0+2x5", application="fruit", error_code="500"),
              series("ray_serve_num_http_error_requests_total", NEW, "0+1x5", application="calc", error_code="503"),
              series("ray_serve_num_http_error_requests_total", NEW, "0+4x5", application="fruit", error_code="404"),
              series("ray_serve_num_http_error_requests_total", OLD, "0+9x5", application="fruit", error_code="500")]
    for app, counts in (("fruit", ("0+7x5", "0+10x5")), ("calc", ("0+1x5", "0+6x5"))):
        for le, values in zip(("10", "+Inf"), counts):
            inputs.append(series("ray_serve_http_request_latency_ms_bucket", NEW, values, application=app, le=le))
    inputs.append(series("ray_serve_http_request_latency_ms_bucket", OLD, "0+100x5", application="fruit", le="+Inf"))
    q = queries(NEW)
    tests = [{"expr": q["requests"], "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 80}]},
             {"expr": q["errors"], "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 15}]},
             {"expr": q["buckets"], "eval_time": "5m", "exp_samples": [{"labels": '{le="10"}', "value": 40},
                                                                       {"labels": '{le="+Inf"}', "value": 80}]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": inputs, "promql_expr_test": tests}]}))
    result = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args,expected", [
    (["--namespace", "Ray"], "--namespace 'Ray' is not a DNS-1123 label"),
    (["--thresholds", '{"max_error_rate": 2}'], "--thresholds: max_error_rate must be at least 0 and below 1"),
    (["--thresholds", '{"watch_s": NaN}'], "--thresholds: watch_s must be a finite number"),
    (["--thresholds", '{"colour": 1}'], "--thresholds:"),
    (["--poll-s", "inf"], "--poll-s must be a finite number above 0"),
])
def test_the_gates_command_line_refuses_bad_input_by_name(args, expected, capsys):
    from rayserve_pulumi.rollout.kuberay_gate import main

    base = {"--namespace": NS, "--rayservice": NAME, "--prometheus": "http://127.0.0.1:9", "--thresholds": "{}"}
    base.update(dict(zip(args[::2], args[1::2])))
    with pytest.raises(SystemExit) as exited:
        main([x for kv in base.items() for x in kv])
    assert exited.value.code == 2 and expected in capsys.readouterr().err
