"""How an application's route changes hands under load, on a real local head: what a gated rollout's hand-off
costs under Serve's HAProxy ingress (the shipped default) and under Serve's own proxy. Loopback only.

  bash bench/setup.sh && .venv/bin/python -m bench.handoff_bench [--proxy haproxy|default] [--rounds 3]

The own-app example (bench.rollout_bench.own_app, `serve.proxy` as given) runs with the rollout's splitter
beside it at `/`, all of its traffic going to the previous version. Under 8 connections of loopback load,
each phase is one Serve config, and its requests sent and failed are counted from the config's sending until
3 s after its state was reached:
  move      the application moves to its hidden route (what rollout.stepped's first step does); the
            splitter takes its route
  move back the application takes its route back
  held move the move again, with the application's replicas first held off HAProxy (rollout.ingress_hold,
            what the rollout does) until HAProxy routes as the move says; then it takes its route back
  delete    a copy of the application serves at the hidden route, and the application is deleted (until
            Serve no longer lists it); the splitter takes its route
  restore   the application is deployed again at its route (until RUNNING)
  clean up  the copy and the splitter are deleted
Printed as the median (min-max) over rounds; results in .bench/handoff_bench.json (ignored).
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

from bench import rollout_bench
from bench.common import spread

OUT = rollout_bench.OUT
ANSWER = "hello, X!"  # the own-app Echo's answer to "x", as rollout_bench's first version gives it
PHASES = ("move", "move back", "held move", "delete", "restore", "clean up")


def _under_load(url: str, action: Callable[[], None]) -> dict:
    from bench.loadgen import Load

    with Load(url, "x", connections=8, duration_s=600, check=lambda answer: answer == ANSWER) as load:
        load.wait_answered(8, timeout_s=60)
        before, start = (load.result.sent, load.result.failed), time.monotonic()
        action()
        took = time.monotonic() - start
        load.finish_in(3)
    return {"s": round(took, 1), "sent": load.result.sent - before[0], "failed": load.result.failed - before[1],
            "errors": dict(load.result.errors)}


def _until(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.2)


def one_round(proxy: str) -> dict:
    from rayserve_pulumi.local.lifecycle import haproxy_files_env, ray_temp_dir
    from rayserve_pulumi.node_agent import ray_ops
    from rayserve_pulumi.rollout import ingress_hold
    from rayserve_pulumi.rollout.splitter import SPLITTER_ROUTE, hidden_route

    rollout_bench.PROXY = proxy
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as folder, \
            rollout_bench.own_app_up(Path(folder)) as app:
        url, dash = app["out"]["app_urls"]["echo"], app["out"]["dashboard"]
        base = url.rsplit("/echo", 1)[0]
        live = ray_ops.applications(dash)["echo"]["deployed_app_config"]
        hidden = hidden_route("previous", live["route_prefix"])
        splitter = {"name": "split", "route_prefix": SPLITTER_ROUTE,
                    "import_path": "rayserve_pulumi.rollout.splitter:app",
                    "args": {"base_url": base, "routes": [live["route_prefix"]]},
                    "deployments": [{"name": "Splitter", "user_config": {"next_percent": 0}}]}
        moved = {**copy.deepcopy(live), "route_prefix": hidden}
        side = {**copy.deepcopy(live), "name": "echo--previous", "route_prefix": hidden}
        http = {"host": "127.0.0.1", "port": int(base.rsplit(":", 1)[1])}

        def deploy(*apps: dict) -> None:
            ray_ops.deploy(dash, {"http_options": http, "applications": list(apps)})

        def listed() -> set:
            return set(ray_ops.applications(dash))

        deploy(live, splitter)
        ray_ops.wait_running(dash, ["split"], timeout=180)
        def routed(app: dict) -> bool:
            with urllib.request.urlopen(base + "/-/routes", timeout=10) as answer:
                return json.loads(answer.read()).get(app["route_prefix"]) == app["name"]

        def held_move() -> None:
            template = haproxy_files_env(ray_temp_dir({"run_dir": str(app["pid"].parent)}))[ingress_hold.SOCKET_ENV]
            sockets = ingress_hold.node_sockets(template, ray_ops.status(dash).get("proxies") or {})
            held = ingress_hold.hold(sockets, ["echo"], print)
            deploy(moved, splitter)
            _until(lambda: routed(moved), "the move routed")
            ingress_hold.release(held, print)

        res = {"move": _under_load(url, lambda: deploy(moved, splitter)),
               "move back": _under_load(url, lambda: deploy(live, splitter))}
        _until(lambda: routed(live), "the move back routed")
        res["held move"] = _under_load(url, held_move)
        deploy(live, splitter)
        _until(lambda: routed(live), "the move back routed")
        deploy(live, side, splitter)
        ray_ops.wait_running(dash, ["echo--previous"], timeout=180)
        res["delete"] = _under_load(url, lambda: (deploy(side, splitter),
                                                  _until(lambda: "echo" not in listed(), "echo deleted")))
        res["restore"] = _under_load(url, lambda: (deploy(live, side, splitter),
                                                   ray_ops.wait_running(dash, ["echo"], timeout=180)))
        res["clean up"] = _under_load(url, lambda: (deploy(live), _until(
            lambda: not {"echo--previous", "split"} & listed(), "the copy and the splitter deleted")))
    return res


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", choices=["haproxy", "default"], default="haproxy")
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    rounds = []
    for i in range(1, a.rounds + 1):
        rounds.append(one_round(a.proxy))
        print(f"round {i}: " + "; ".join(f"{p} {r['failed']}/{r['sent']} {r['errors']}" for p, r in rounds[-1].items()),
              flush=True)
    summary = {}
    for phase in PHASES:
        summary[phase] = {key: spread([r[phase][key] for r in rounds]) for key in ("s", "sent", "failed")}
    OUT.mkdir(exist_ok=True)
    (OUT / "handoff_bench.json").write_text(json.dumps({"proxy": a.proxy, "rounds": rounds, "summary": summary},
                                                       indent=2))
    print(f"serve.proxy: {a.proxy}; median (min-max) of {len(rounds)} round(s)")
    print(f"{'phase':<10} {'seconds':>18} {'sent':>20} {'failed':>16}")
    for phase, f in summary.items():
        print(f"{phase:<10} {f['s']:>18} {f['sent']:>20} {f['failed']:>16}")
    return summary


if __name__ == "__main__":
    main()
