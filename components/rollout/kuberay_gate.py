"""The rollout gate on KubeRay: watches a RayService's incremental upgrade and, when the new cluster breaks a
threshold, returns the RayService to its last good spec, so KubeRay moves the traffic back (its
RollbackInProgress, v1.7.0: "goal state reverted to original cluster during upgrade").

Runs in the RayService's namespace (kuberay.rollout_gate declares it), from files a ConfigMap mounts: this
module, gate.py and constants.py, the standard library only, so any Ray image runs it. Each poll:
- settled (no upgrade, KubeRay has observed the spec's generation, every application RUNNING): a spec version
  not yet recorded is marked `promoted-<version>` (what `pulumi up` waits for) and kept as the last good spec
  in the ConfigMap `<name>-last-good`;
- upgrading: what the pending cluster served since its traffic step began (KubeRay's trafficRoutedPercent)
  against the active cluster, from Serve's metrics in Prometheus by the pods' `ray_io_cluster` label, through
  `gate.decide`. A breach, the pending cluster not RUNNING within `step_budget_s`, or metrics unreadable that
  long puts the last good spec back in one JSON Patch (guarded by a test of the version, so a newer `pulumi
  up` is never overwritten), with the verdict `rolled-back-<version>`, the reason, and a Warning event.
KubeRay sets the pace (step_size_percent every interval_s); the gate can only roll back, so it cannot hold the
last step until latency was judged.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import ssl
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from rayserve_pulumi.constants import (
    ROLLOUT_REASON_ANNOTATION, ROLLOUT_VERDICT_ANNOTATION, SPEC_VERSION_ANNOTATION,
)
from rayserve_pulumi.rollout import gate

__all__ = ["PROMOTED", "ROLLED_BACK", "LAST_GOOD_KEYS", "last_good_name", "Observed", "observe", "queries",
           "Gate", "KubeApi", "Prometheus", "main"]

PROMOTED, ROLLED_BACK = "promoted-", "rolled-back-"  # verdict prefixes (the annotation's value: prefix + version)
LAST_GOOD_KEYS = ("version", "spec.json")  # the last-good ConfigMap's data
FIELD_MANAGER = "rayserve-rollout-gate"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9a-f]{1,64}$")


def last_good_name(service: str) -> str:
    return f"{service}-last-good"


def _pointer(key: str) -> str:
    """A JSON Pointer segment (RFC 6901): '~' and '/' escaped."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Observed:
    """What one read of the RayService says."""

    version: Optional[str]
    generation: int
    observed_generation: int
    upgrading: bool
    rolling_back: bool
    active: Optional[str]
    pending: Optional[str]
    percent: Optional[int]  # of traffic on the pending cluster
    active_apps: dict
    pending_apps: dict

    @property
    def settled(self) -> bool:
        return (not self.upgrading and not self.rolling_back and self.observed_generation == self.generation
                and bool(self.active_apps) and all(s == "RUNNING" for s in self.active_apps.values()))

    @property
    def pending_healthy(self) -> bool:
        return bool(self.pending_apps) and all(s == "RUNNING" for s in self.pending_apps.values())


def _cluster(name) -> Optional[str]:
    return name if isinstance(name, str) and _DNS_LABEL.match(name) else None


def observe(rs: dict) -> Observed:
    """The gate's view of a RayService as the API server returns it (KubeRay v1.7.0's status fields)."""
    meta, status = rs.get("metadata") or {}, rs.get("status") or {}
    annotations = meta.get("annotations") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or [] if isinstance(c, dict)}
    active, pending = status.get("activeServiceStatus") or {}, status.get("pendingServiceStatus") or {}

    def apps(s: dict) -> dict:
        return {n: (a or {}).get("status", "UNKNOWN") for n, a in (s.get("applicationStatuses") or {}).items()}

    percent = pending.get("trafficRoutedPercent")
    version = annotations.get(SPEC_VERSION_ANNOTATION)
    return Observed(
        version=version if isinstance(version, str) and _VERSION.match(version) else None,
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        upgrading=conditions.get("UpgradeInProgress") == "True", rolling_back=conditions.get("RollbackInProgress") == "True",
        active=_cluster(active.get("rayClusterName")), pending=_cluster(pending.get("rayClusterName")),
        percent=int(percent) if isinstance(percent, int) and not isinstance(percent, bool) else None,
        active_apps=apps(active), pending_apps=apps(pending))


def queries(cluster: str) -> dict[str, str]:
    """PromQL for one cluster's cumulative Serve counters (its pods' metrics carry `ray_io_cluster`, relabelled
    by the PodMonitors): requests, 5xx answers, and the latency histogram by bucket."""
    match = f'ray_io_cluster="{cluster}"'  # a DNS label (checked): nothing to escape
    return {"requests": f"sum(ray_serve_num_http_requests_total{{{match}}})",
            "errors": f'sum(ray_serve_num_http_error_requests_total{{{match},error_code=~"5.."}})',
            "buckets": f"sum by (le) (ray_serve_http_request_latency_ms_bucket{{{match}}})"}


@dataclass
class _Watch:
    """One upgrade being watched: the version, its pending cluster, and the current traffic step."""

    version: str
    pending: str
    started: float
    percent: Optional[int] = None
    step_started: float = 0.0
    base: Optional[tuple] = None  # (pending, active) samples at the step's start
    unreadable_since: Optional[float] = None


class Gate:
    """The gate's loop body (`poll`), against a Kubernetes API (`kube`) and a Prometheus (`prom`)."""

    def __init__(self, thresholds: gate.Thresholds, kube, prom, clock: Callable[[], float] = time.monotonic,
                 log: Callable[[str], None] = print):
        self.t, self.kube, self.prom, self.clock, self.log = thresholds, kube, prom, clock, log
        self.watch: Optional[_Watch] = None

    def poll(self) -> str:
        """One look: returns what it did or saw, in a few words."""
        rs = self.kube.get_rayservice()
        obs = observe(rs)
        if obs.version is None:
            return "no spec version: not a gated RayService"
        last = self.kube.get_last_good()
        if obs.settled:
            self.watch = None
            if last is None or last["version"] != obs.version:
                self.kube.patch_rayservice([
                    {"op": "test", "path": f"/metadata/annotations/{_pointer(SPEC_VERSION_ANNOTATION)}", "value": obs.version},
                    {"op": "add", "path": f"/metadata/annotations/{_pointer(ROLLOUT_VERDICT_ANNOTATION)}",
                     "value": PROMOTED + obs.version}])
                self.kube.put_last_good(obs.version, rs["spec"])
                self.log(f"version {obs.version} is serving: promoted, kept as the last good spec")
                return "promoted"
            return "settled"
        if not obs.upgrading or obs.rolling_back or not obs.pending:
            return "KubeRay is rolling back" if obs.rolling_back else "waiting for KubeRay"
        if last is None or last["version"] == obs.version:
            return "no last good spec to return to: not gated" if last is None else "waiting for KubeRay"
        return self._judge(obs, last)

    def _judge(self, obs: Observed, last: dict) -> str:
        now = self.clock()
        w = self.watch
        if w is None or (w.version, w.pending) != (obs.version, obs.pending):
            w = self.watch = _Watch(obs.version, obs.pending, now)
            self.log(f"version {obs.version}: watching the new cluster {obs.pending} beside {obs.active}")
        try:
            samples = (self.prom.sample(obs.pending), self.prom.sample(obs.active) if obs.active else None)
        except (OSError, ValueError) as exc:
            w.unreadable_since = w.unreadable_since if w.unreadable_since is not None else now
            if now - w.unreadable_since >= self.t.step_budget_s:
                return self._roll_back(obs, last, f"Serve's metrics unreadable for {now - w.unreadable_since:.0f} s "
                                                  f"(step budget {self.t.step_budget_s:g} s): {gate.cause(exc)}")
            return "metrics unreadable"
        w.unreadable_since = None
        if obs.percent != w.percent or w.base is None:
            w.percent, w.step_started, w.base = obs.percent, now, samples
            self.log(f"version {obs.version}: {obs.percent or 0} % of traffic on {obs.pending}")
        new = gate.window_between(w.base[0], samples[0])
        previous = gate.window_between(w.base[1], samples[1]) if w.base[1] and samples[1] else None
        healthy = obs.pending_healthy
        elapsed = now - (w.step_started if healthy else w.started)
        decision = gate.decide(self.t, new, previous, elapsed, healthy)
        if decision.action == gate.ROLLBACK:
            return self._roll_back(obs, last, f"{decision.reason} {decision.observed:g} (threshold {decision.threshold:g}) "
                                              f"at {obs.percent or 0} % of traffic")
        return decision.action

    def _roll_back(self, obs: Observed, last: dict, reason: str) -> str:
        reason = f"version {obs.version} rolled back: {reason}; the previous version {last['version']} is serving"
        annotations = {SPEC_VERSION_ANNOTATION: last["version"], ROLLOUT_VERDICT_ANNOTATION: ROLLED_BACK + obs.version,
                       ROLLOUT_REASON_ANNOTATION: reason}
        self.kube.patch_rayservice([
            {"op": "test", "path": f"/metadata/annotations/{_pointer(SPEC_VERSION_ANNOTATION)}", "value": obs.version},
            {"op": "replace", "path": "/spec", "value": last["spec"]},
            *({"op": "add", "path": f"/metadata/annotations/{_pointer(k)}", "value": v} for k, v in annotations.items())])
        self.kube.warn("RolledBack", reason)
        self.log(reason)
        self.watch = None
        return "rolled back"


class KubeApi:
    """The RayService, its last-good ConfigMap and its events, through the API server with the pod's service
    account (the token is read for every request: the kubelet rotates it)."""

    SA = "/var/run/secrets/kubernetes.io/serviceaccount"

    def __init__(self, namespace: str, service: str, base: Optional[str] = None, sa_dir: str = SA):
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.base = base or f"https://{host}:{port}"
        self.namespace, self.service, self.sa_dir = namespace, service, sa_dir
        ca = os.path.join(sa_dir, "ca.crt")
        self.context = ssl.create_default_context(cafile=ca) if os.path.exists(ca) else None

    def _call(self, method: str, path: str, body=None, content_type: str = "application/json") -> dict:
        headers = {"Accept": "application/json"}
        token = os.path.join(self.sa_dir, "token")
        if os.path.exists(token):
            with open(token) as f:
                headers["Authorization"] = f"Bearer {f.read().strip()}"
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            return json.loads(response.read() or b"{}")

    def _rayservice(self) -> str:
        return f"/apis/ray.io/v1/namespaces/{self.namespace}/rayservices/{self.service}"

    def get_rayservice(self) -> dict:
        return self._call("GET", self._rayservice())

    def patch_rayservice(self, ops: list) -> None:
        self._call("PATCH", f"{self._rayservice()}?fieldManager={FIELD_MANAGER}", ops, "application/json-patch+json")

    def _configmap(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{last_good_name(self.service)}"

    def get_last_good(self) -> Optional[dict]:
        data = self._call("GET", self._configmap()).get("data") or {}
        version, spec = (data.get(k) for k in LAST_GOOD_KEYS)
        if not version or not spec:
            return None
        return {"version": version, "spec": json.loads(spec)}

    def put_last_good(self, version: str, spec: dict) -> None:
        self._call("PATCH", f"{self._configmap()}?fieldManager={FIELD_MANAGER}",
                   {"data": dict(zip(LAST_GOOD_KEYS, (version, json.dumps(spec, sort_keys=True))))},
                   "application/merge-patch+json")

    def warn(self, reason: str, message: str) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._call("POST", f"/api/v1/namespaces/{self.namespace}/events", {
            "metadata": {"generateName": f"{self.service}.", "namespace": self.namespace},
            "involvedObject": {"apiVersion": "ray.io/v1", "kind": "RayService", "name": self.service,
                               "namespace": self.namespace},
            "reason": reason, "message": message[:1024], "type": "Warning", "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1})


class Prometheus:
    """Instant queries of one cluster's Serve counters (`queries`) as a gate.Sample."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _vector(self, query: str) -> list:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise ValueError(f"Prometheus answered {body.get('status')}: {body.get('error')}")
        return body["data"]["result"]

    @staticmethod
    def _number(text) -> float:
        value = float(text)
        if math.isnan(value):
            raise ValueError(f"Prometheus returned {text!r}")
        return value

    def sample(self, cluster: str) -> gate.Sample:
        q = queries(cluster)
        total = {k: sum(self._number(r["value"][1]) for r in self._vector(q[k])) for k in ("requests", "errors")}
        buckets = {self._number(r["metric"]["le"]): self._number(r["value"][1]) for r in self._vector(q["buckets"])
                   if "le" in r.get("metric", {})}
        return gate.Sample(requests=total["requests"], errors=total["errors"], buckets=buckets)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="rayserve-rollout-gate", description=__doc__.splitlines()[0])
    p.add_argument("--namespace", required=True)
    p.add_argument("--rayservice", required=True)
    p.add_argument("--prometheus", required=True, help="Prometheus' base URL")
    p.add_argument("--thresholds", required=True, help="JSON: gate.Thresholds' fields")
    p.add_argument("--poll-s", type=float, default=5.0)
    a = p.parse_args(argv)
    for key in ("namespace", "rayservice"):
        if not _DNS_LABEL.match(getattr(a, key)):
            p.error(f"--{key} {getattr(a, key)!r} is not a DNS-1123 label")
    if not (math.isfinite(a.poll_s) and a.poll_s > 0):
        p.error(f"--poll-s must be a finite number above 0, not {a.poll_s}")
    try:
        thresholds = gate.Thresholds(**json.loads(a.thresholds))
    except (ValueError, TypeError) as exc:
        p.error(f"--thresholds: {exc}")
    g = Gate(thresholds, KubeApi(a.namespace, a.rayservice), Prometheus(a.prometheus),
             log=lambda line: print(line, flush=True))
    last = None
    while True:  # a controller: it polls until its pod stops
        try:
            said = g.poll()
        except (OSError, ValueError, KeyError) as exc:  # the API server or Prometheus between two polls
            said = gate.cause(exc)
        if said != last:
            print(said, flush=True)
            last = said
        time.sleep(a.poll_s)


if __name__ == "__main__":
    sys.exit(main())
