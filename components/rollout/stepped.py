"""A gated rollout of new application code on a running Serve, with Serve's own mechanisms only (run by the
local platform's `up`, and by the VM node agent's `sync` through `python -m rayserve_pulumi.rollout.stepped`).

1. Beside: each application's new version is deployed under its own name and a hidden route (on `local`,
   importing a content-addressed copy of the new code; the running version's copy was made when it was
   deployed), and the splitter (rollout.splitter) at `/`, under every application's route. The
   running applications are not touched: a new version that never becomes healthy within `step_budget_s` is
   removed and nothing else happened.
2. Steps: the first moves each running application to its hidden "previous" route (a route change: the same
   replicas), which hands its route to the splitter with no gap; the splitter's `next_percent` (its
   user_config, applied in place) then goes through `rollout.steps`, each step watched by the gate
   (rollout.gate) on the splitter's per-version counters (the splitter itself stops sending an application's
   requests to its new version at the failure that breaches the error rate). A breach sets 0 % at once,
   moves the previous version back to its route, removes the new one and the splitter, and raises
   RolloutFailed naming the threshold and the observed value. Whatever else stops the rollout midway (the
   splitter or the dashboard not answering, a deploy refused) hands back the same way before it is raised.
3. Promote: at 100 %, each application gets the new code under its own name at its hidden route (Serve rolls
   its replicas while the splitter sends everything to the new version), takes its route back, and once the
   splitter holds no request, it and the side versions go.

An application at `/` is stepped too: while it holds `/`, the splitter waits at a route of its own
(SPLITTER_PARKED). Its hand-over comes first: one deploy moves it to its hidden route and gives `/` to the
splitter, and only once Serve's proxy routes `/` to the splitter do the other applications move (a route
left while `/` is still that application's would reach it: Serve applies one deploy's route changes
application by application). The hand-back runs in the opposite order, and `/` goes back only once the
splitter holds no request of another route (one it forwarded to a hidden route Serve no longer routes would
fall under `/`). Every deploy that moves a route waits until Serve's ingress on every node routes as it says
(`/-/routes`); under Serve's HAProxy ingress, every application whose route it changes is held off HAProxy
meanwhile (rollout.ingress_hold).
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import Callable, Collection, Optional
from urllib.parse import urlsplit

from rayserve_pulumi.constants import ROLLOUT_NOTHING_TO_STEP, ROLLOUT_ROLLED_BACK
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.rollout import gate, ingress_hold, ingress_hold_remote
from rayserve_pulumi.rollout.splitter import (ROUTE_ROOT, SPLITTER_PARKED, SPLITTER_PATH, SPLITTER_ROUTE,
                                              STATS_HEADER, hidden_route)

__all__ = ["SIDE", "SPLIT", "Stepped", "RolloutFailed", "code_changed", "main"]

CODE_FIELDS = ("import_path", "runtime_env")  # where an application's code comes from
SIDE = "--next"  # the new version's application name: <app>--next
SPLIT = "rayserve--rollout"  # the splitter's application name
_SPLITTER = "rayserve_pulumi.rollout.splitter:app"


def _sample(counters: dict) -> gate.Sample:
    return gate.Sample(requests=float(counters["requests"]), errors=float(counters["errors"]),
                       buckets={float(k): float(v) for k, v in counters["buckets"].items()})


class Stepped:
    """One rollout from the running config `live` (exactly as deployed) to `target` (the new version, each
    application pinned to the new code's copy) on the head at `dash`, Serve at `base_url`."""

    def __init__(self, dash: str, base_url: str, live: dict, target: dict, thresholds: gate.Thresholds,
                 steps: list[int], report: Callable[[str], None], names: Optional[list[str]] = None,
                 haproxy_socket: Optional[str] = None):
        self.dash, self.base_url, self.live, self.target = dash, base_url.rstrip("/"), live, target
        self.haproxy_socket = haproxy_socket  # the admin socket Serve's HAProxy ingress was given; None: no HAProxy
        self._remote = ingress_hold_remote.Remote(report)
        self._deployed: dict[str, Optional[str]] = {}  # each application's route as last deployed
        self.thresholds, self.steps, self.report = thresholds, steps, report
        old = {a["name"]: a for a in live["applications"]}
        # stepped: `names` (default: every application of both); the others change at the end, in place
        self.names = [a["name"] for a in target["applications"]
                      if a["name"] in old and (names is None or a["name"] in names)]
        self.routes = {n: old[n].get("route_prefix") or f"/{n}" for n in self.names}
        self._root = next((n for n in self.names if self.routes[n] == SPLITTER_ROUTE), None)  # stepped, at `/`
        self._origin: dict[str, dict] = {}  # each application's splitter counts when the first step began
        self._percent: float = 0  # the step traffic is at

    @staticmethod
    def possible(live: dict, names: Optional[list[str]] = None) -> Optional[str]:
        """Why a stepped rollout of `names` (default every application) cannot run on this config, or None."""
        for app in live["applications"]:
            route = app.get("route_prefix") or ""
            if route == ROUTE_ROOT or route.startswith(ROUTE_ROOT + "/"):
                return f"application {app['name']} serves {route}, under the rollout's own {ROUTE_ROOT}"
            if route == SPLITTER_ROUTE and names is not None and app["name"] not in names:
                return (f"application {app['name']} serves {SPLITTER_ROUTE} and its code is unchanged: the splitter "
                        "needs that route during a rollout")
        return None

    # the configs of each phase -------------------------------------------------------------------------
    def _new(self, name: str) -> dict:
        return next(a for a in self.target["applications"] if a["name"] == name)

    def _splitter(self, percent: float, parked: bool) -> dict:
        """The splitter at `/`, or at SPLITTER_PARKED (`parked`) while a stepped application at `/` holds it."""
        return {"name": SPLIT, "route_prefix": SPLITTER_PARKED if parked else SPLITTER_ROUTE, "import_path": _SPLITTER,
                "args": {"base_url": self.base_url, "routes": [self.routes[n] for n in self.names],
                         "max_error_rate": self.thresholds.max_error_rate,
                         "min_requests": self.thresholds.min_requests},
                "deployments": [{"name": "Splitter", "user_config": {"next_percent": percent}}]}

    def _config(self, previous: str, percent: float = 0, own: Collection[str] = ()) -> dict:
        """The live applications, each stepped one as `previous` ("live" or "new" code) at its own route (those
        in `own`) or at its hidden one; each new version at its hidden route; the splitter (_splitter)."""
        apps = []
        for app in self.live["applications"]:
            name = app["name"]
            if name not in self.names:
                apps.append(app)
                continue
            body = app if previous == "live" else self._new(name)
            route = self.routes[name] if name in own else hidden_route("previous", self.routes[name])
            apps += [{**body, "route_prefix": route},
                     {**self._new(name), "name": name + SIDE, "route_prefix": hidden_route("next", self.routes[name])}]
        return {**self.live, "applications": [*apps, self._splitter(percent, self._root in own)]}

    # the steps ---------------------------------------------------------------------------------------
    def _deploy(self, config: dict, wait_for: list[str], timeout: float) -> None:
        self._send(config)
        ray_ops.wait_running(self.dash, wait_for, timeout=timeout)

    def _ingresses(self) -> list[str]:
        """Serve's ingress on this host (base_url: the rollout runs on the head, by `up` on local and by the head's
        sync on a VM) and on every other node whose proxy Serve lists as healthy, by the node's IP and Serve's
        port. A VM's balancer sends requests to every node's, and each node's proxy learns a route change on its
        own: a route has moved only once each of them routes it so. The head is the node of Serve's controller
        (Serve keeps it there); its proxy may listen on the loopback address only, as on local."""
        port, details = urlsplit(self.base_url).port, ray_ops.status(self.dash)
        head = (details.get("controller_info") or {}).get("node_id")
        ips = sorted({p["node_ip"] for node, p in (details.get("proxies") or {}).items()
                      if node != head and p.get("status") == "HEALTHY" and p.get("node_ip")})
        return [self.base_url, *(f"http://{f'[{ip}]' if ':' in ip else ip}:{port}" for ip in ips)]

    def _wait_routes(self, config: dict, timeout: float = 30) -> None:
        """Until Serve's ingress on every node (_ingresses) routes every application's route of `config` to it."""
        wanted = {a["route_prefix"]: a["name"] for a in config["applications"]}
        deadline, pending = time.monotonic() + timeout, self._ingresses()
        while pending:
            try:
                with urllib.request.urlopen(pending[0] + "/-/routes", timeout=10) as answer:
                    routed = json.loads(answer.read())
                said = f"it routes {routed}"
            except (OSError, ValueError) as exc:
                routed, said = None, f"no answer: {gate.cause(exc)}"
            if isinstance(routed, dict) and all(routed.get(r) == n for r, n in wanted.items()):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"Serve's ingress at {pending[0]} did not route {wanted} within {timeout:.0f} s "
                                   f"({said})")
            time.sleep(0.1)

    def _send(self, config: dict) -> None:
        """Deploy `config`; remember where it puts each application."""
        ray_ops.deploy(self.dash, config)
        self._deployed = {a["name"]: a.get("route_prefix") for a in config["applications"]}

    def _move(self, previous: str, percent: float, own: Collection[str]) -> None:
        """Deploy with the applications in `own` at their own routes (the others at their hidden ones), then
        wait until the proxy routes so. Under Serve's HAProxy ingress, every application whose route changes is
        held off HAProxy meanwhile, on every node (rollout.ingress_hold), until its replicas say they serve the
        new route (each checks the route of a request HAProxy sends it). A deploy that failed releases at once."""
        config = self._config(previous, percent, own)
        moving = [a["name"] for a in config["applications"]
                  if a["name"] in self._deployed and self._deployed[a["name"]] != a.get("route_prefix")]
        held = self._hold(moving) if moving and self.haproxy_socket else ([], {})
        routes = {}  # each held backend's new route, once it is deployed
        try:
            self._send(config)
            self._wait_routes(config)
            if any(held):
                ray_ops.wait_running(self.dash, moving, timeout=self.thresholds.step_budget_s)
                routes = {ingress_hold.backend_name(a["name"]): a.get("route_prefix") or f"/{a['name']}"
                          for a in config["applications"] if a["name"] in moving}
        finally:
            if held[0]:
                ingress_hold.release(held[0], self.report, routes)
            if held[1]:
                self._remote.release(held[1], routes)

    def _hold(self, apps: list[str]) -> tuple[list, dict]:
        """Hold `apps` on this host's HAProxy ingresses through their sockets, and on every other node whose proxy
        Serve lists through a Ray actor there (rollout.ingress_hold_remote): the ones held here, and elsewhere."""
        nodes = sorted(ray_ops.status(self.dash).get("proxies") or {})
        here = ingress_hold.node_sockets(self.haproxy_socket, nodes)
        elsewhere = [n for n in nodes if not any(f"/{n}/" in sock for sock in here)]
        return (ingress_hold.hold(here, apps, self.report),
                self._remote.hold(elsewhere, self.haproxy_socket, apps) if elsewhere else {})

    def _hand_over(self, percent: float) -> None:
        """Every stepped application's route to the splitter: the one at `/` first (see the module's docstring)."""
        if self._root is not None:
            self._move("live", percent, set(self.names) - {self._root})
        self._move("live", percent, ())

    def _hand_back(self, previous: str, percent: float) -> None:
        """Every stepped application back at its own route (as `previous`): the one at `/` last."""
        if self._root is not None:
            others = set(self.names) - {self._root}
            self._move(previous, percent, others)
            self._drained([self.routes[n] for n in others])
        self._move(previous, percent, self.names)

    def _drained(self, routes: list[str], timeout: float = 60) -> None:
        """Wait until the splitter holds no request under `routes` (no new one comes: they are routed again)."""
        deadline = time.monotonic() + timeout
        while any(self._counts(SPLITTER_PATH)["in_flight_by_route"].get(r) for r in routes):
            if time.monotonic() > deadline:
                self.report(f"rollout: the splitter still held requests of {routes} after {timeout:.0f} s")
                return
            time.sleep(0.05)

    def _counts(self, path: str) -> dict:
        """What the splitter answers under `path` to a request for its counts."""
        req = urllib.request.Request(self.base_url + path, headers={STATS_HEADER: "stats"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            return json.loads(answer.read())

    def _stats(self, name: str) -> dict:
        return self._counts(self.routes[name])

    def _wait_stats(self, name: str, percent: float, timeout: float = 30) -> dict:
        """The splitter's counters once it serves the application's route at `percent`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                stats = self._stats(name)  # until the route is the splitter's, the application answers
                if isinstance(stats, dict) and stats.get("next_percent") == percent:
                    return stats
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the splitter did not serve {self.routes[name]} at {percent} % within "
                                   f"{timeout:.0f} s")
            time.sleep(0.1)

    def _idle(self, timeout: float = 60) -> None:
        """Wait until the splitter holds no request and has received none for a second: the applications' routes
        are back and every request it forwarded has its answer, so removing it drops nothing."""
        deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
        while time.monotonic() < deadline:
            held = self._counts(SPLITTER_PATH)
            if held["in_flight"] or held["received"] != last:
                last, since = held["received"], time.monotonic()
            elif time.monotonic() - since >= 1:
                return
            time.sleep(0.1)
        self.report(f"rollout: the splitter still held requests after {timeout:.0f} s; removing it")

    def _gone(self, timeout: float = 120) -> None:
        """Wait until the side versions and the splitter have shut down (their requests drained)."""
        extra = {n + SIDE for n in self.names} | {SPLIT}
        deadline = time.monotonic() + timeout
        while extra & set(ray_ops.applications(self.dash)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sorted(extra & set(ray_ops.applications(self.dash)))} still shutting down "
                                   f"after {timeout:.0f} s")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        apps = ray_ops.applications(self.dash)
        return all((apps.get(n + SIDE) or {}).get("status") == "RUNNING" for n in self.names)

    def _watch(self, percent: int, require_latency: bool) -> Optional[gate.Decision]:
        """Watch one step; the breaching decision, or None once every application's step may proceed. Counted
        from the first step (both versions served by then are the same code), so latency is judged on every
        request the rollout sent each version."""
        step = {n: self._wait_stats(n, percent) for n in self.names}  # the splitter serves this step's percentage
        for n in self.names:
            self._origin.setdefault(n, step[n])
        start = time.monotonic()
        while True:
            time.sleep(0.25)
            elapsed, healthy = time.monotonic() - start, self._healthy()
            decisions = []
            for n in self.names:
                after, before = self._stats(n), self._origin[n]
                if after.get("tripped"):  # the splitter cut the new version off at the failure that breached the rate
                    decision = gate.error_rate_rollback(after["next"]["errors"], after["next"]["requests"],
                                                        self.thresholds.max_error_rate)
                else:
                    new, old = (gate.window_between(_sample(before[v]), _sample(after[v]))
                                for v in ("next", "previous"))
                    rates = tuple(gate.window_between(_sample(step[n][v]), _sample(after[v])).requests / elapsed
                                  for v in ("next", "previous")) if require_latency else None
                    decision = gate.decide(self.thresholds, new, old, elapsed, healthy, require_latency, rates)
                if decision.action == gate.ROLLBACK:
                    return gate.Decision(decision.action, f"{n}: {decision.reason}", decision.observed,
                                         decision.threshold)
                decisions.append((n, decision))
            if all(d.action == gate.PROCEED for _, d in decisions):
                self.report("rollout: " + "; ".join(f"{n} at {percent} %: {d.reason}" for n, d in decisions))
                return None

    def run(self) -> None:
        """Return once the new version serves every request. Otherwise put the previous version back on every
        request and raise RolloutFailed, naming the breach or whatever stopped the rollout; RuntimeError,
        naming both causes, only when handing back failed too."""
        try:
            self._run()
        finally:
            self._remote.close()  # the Ray driver of holds on other nodes, if one connected

    def _run(self) -> None:
        started = time.monotonic()
        self._beside()
        try:
            breach = self._steps(started)
            if breach is None:
                self._promote(started)
                return
            cause = (f"rolled back at {self._percent} %: {breach.reason} {breach.observed:g} "
                     f"(threshold {breach.threshold:g})")
        except Exception as exc:  # the splitter or the dashboard stopped answering, a deploy was refused...
            cause = f"stopped at {self._percent} % by {gate.cause(exc)}"
            self.report(f"rollout: {cause}; handing every request back to the previous version")
        try:
            self._back()
        except Exception as exc:
            raise RuntimeError(f"rollout {cause}; handing back failed too ({gate.cause(exc)}); the next up redeploys "
                               "the last good config") from None
        raise RolloutFailed(cause)

    def _beside(self) -> None:
        """The new versions and the splitter beside the running applications, which keep their routes (the
        splitter at `/` is under them, or parked while one of them holds `/`); a new version that never becomes
        healthy goes again, nothing else moved."""
        budget, names = self.thresholds.step_budget_s, self.names
        self.report(f"rollout: new version of {', '.join(names)} beside the running one")
        try:
            self._deploy(self._config("live", 0, names), [n + SIDE for n in names] + [SPLIT], budget)
        except (ray_ops.ServeDeployError, TimeoutError) as exc:
            self._send(self.live)  # only the new versions and the splitter go
            self._gone()
            why = (f"within the step budget of {budget:g} s" if isinstance(exc, TimeoutError)
                   else f"and Serve gave up on it before the step budget of {budget:g} s ran out")
            raise RolloutFailed(f"the new version never became healthy {why} ({exc})") from None

    def _steps(self, started: float) -> Optional[gate.Decision]:
        """Move traffic through the steps; the first breaching decision, or None at 100 %."""
        for step, percent in enumerate(self.steps):
            self._percent = percent
            if step == 0:  # the applications' routes go to the splitter (they move to hidden ones)
                self._hand_over(percent)
            else:
                self._send(self._config("live", percent))
            self.report(f"rollout: {percent} % of traffic on the new version ({time.monotonic() - started:.1f} s)")
            # all traffic moves only once latency was judged against the previous version's
            breach = self._watch(percent, require_latency=step == len(self.steps) - 2)
            if breach is not None:
                return breach
        return None

    def _promote(self, started: float) -> None:
        """The new code under each application's own name, still behind the splitter; then its route; then the
        splitter and the side versions go once the splitter holds no request."""
        budget, names = self.thresholds.step_budget_s, self.names
        self.report(f"rollout: promoting the new version ({time.monotonic() - started:.1f} s)")
        self._deploy(self._config("new", 100), names, budget)
        self.report(f"rollout: {', '.join(names)} on the new code ({time.monotonic() - started:.1f} s)")
        self._hand_back("new", 100)
        self._idle()
        self._deploy(self.target, [a["name"] for a in self.target["applications"]], budget)
        self._gone()
        self.report(f"rollout: the new version serves every request ({time.monotonic() - started:.1f} s)")

    def _back(self) -> None:
        self._send(self._config("live", 0))  # at once: no request to the new version
        self._hand_back("live", 0)
        self._idle()
        self._deploy(self.live, self.names, self.thresholds.step_budget_s)
        self._gone()


class RolloutFailed(RuntimeError):
    """The new version was rolled back by the gate: the previous version serves every request again."""


def code_changed(live: dict, target: dict) -> list[str]:
    """The applications of `target` also in `live` whose code changed: another import path or runtime_env (a
    working_dir or py_modules URI, an image, PYTHONPATH). A config-only change needs no second version."""
    old = {a["name"]: a for a in live.get("applications") or []}
    return [a["name"] for a in target.get("applications") or [] if a["name"] in old
            and any(a.get(f) != old[a["name"]].get(f) for f in CODE_FIELDS)]


def main() -> int:
    """`python -m rayserve_pulumi.rollout.stepped`, a JSON request on stdin: {"dashboard", "serve_url", "live",
    "target", "rollout"} (`rollout` as `rayserve:rollout`; "auth_token" when the dashboard wants one: never in
    argv; "haproxy_socket" when Serve's HAProxy has another admin socket than this environment says). Steps
    the applications whose code changed; progress on stderr. Exit 0 once the new version serves every request,
    ROLLOUT_ROLLED_BACK when the previous one serves every request again (the last line says why),
    ROLLOUT_NOTHING_TO_STEP when no application's code changed, 1 on anything else (the last line says what)."""
    from rayserve_pulumi.rollout.settings import RolloutSettings

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        request = json.load(sys.stdin)
        if request.get("auth_token"):
            os.environ["RAY_AUTH_TOKEN"] = request["auth_token"]
        settings = RolloutSettings.from_inputs(request["rollout"])
        names = code_changed(request["live"], request["target"])
        if not names:
            return ROLLOUT_NOTHING_TO_STEP
        reason = Stepped.possible(request["live"], names)
        if reason:
            report(f"rollout: {reason}; updating in place without a gated rollout")
            return ROLLOUT_NOTHING_TO_STEP
        Stepped(request["dashboard"], request["serve_url"], request["live"], request["target"],
                settings.thresholds(), settings.steps, report, names, request.get("haproxy_socket")).run()
    except RolloutFailed as exc:
        report(str(exc))
        return ROLLOUT_ROLLED_BACK
    except Exception as exc:  # one line, with its cause
        report(f"rollout failed: {gate.cause(exc)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
