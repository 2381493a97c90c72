"""Shared test helpers: free ports, HTTP calls, and reading Serve replica state."""
from __future__ import annotations

import contextlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import requests

from bench.common import free_local_ports, free_port
from rayserve_pulumi.node_agent import ray_ops

__all__ = ["REPORTS", "RESULTS", "free_local_ports", "free_port", "post", "ray_answers", "replica_pids",
           "stand_in_commands", "stand_in_http", "under_load"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"  # ignored by git: what test runs measure
# Requests a second each connection of a scenario's load sends at most: 16 connections then send a few
# hundred a second, enough to find a failing moment (a change, a kill) within milliseconds, without the
# saturating load's CPU, which slows the recovery under test and every test running beside it.
LOAD_RATE = 20
REPORTS: dict[str, dict] = {}  # scenario -> figures, printed at the end of the run (conftest)


def stand_in_commands(folder: Path, scripts: dict[str, str]) -> str:
    """Scripts in `folder` named as the commands they stand in for (there is no iptables, cloud-init, aws CLI
    or Pulumi CLI to run here), executable; returns a PATH with `folder` first."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


@contextlib.contextmanager
def stand_in_http(host: str, port: int, answer: Callable[[str, str], tuple[int, object]]):
    """A threaded HTTP server on host:port standing in for one of Serve's: every GET, POST and PUT (its body read)
    gets `answer(method, path)` = (status, a JSON body, or bytes sent as they are). Yields its base URL; shut
    down on the way out."""
    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, body = answer(self.command, self.path)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting (an answer `answer` held back)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def local_head(props: dict):
    """A local head created through the provider from `props`; deleted afterwards, and its sessions (Ray,
    Prometheus) stopped by their PID files whatever happened."""
    from rayserve_pulumi.local import LocalServeProvider
    from rayserve_pulumi.local.lifecycle import stop_started

    provider = LocalServeProvider()
    try:
        result = provider.create(props)
        yield provider, result
        provider.delete(result.id, result.outs)
    finally:
        stop_started(props)


def agent_port_options() -> list[str]:
    """The node agent's options giving a node's agents free ports of a test's own (its defaults are Ray's and the
    package's fixed ports: another node on this machine, a parallel test's or the user's, may hold them)."""
    return [arg for flag in ray_ops.AGENT_PORT_FLAGS.values() for arg in (flag, str(free_port()))]


# Played by each agent's interpreter before it imports Ray: an agent as slow to start as one seen on a loaded
# two-core machine (16-22 s), past the 15 s a raylet waits for an agent to publish a port Ray picked.
_SLOW_AGENT = """import os, sys, time
if sys.argv[0].endswith(("dashboard/agent.py", "runtime_env/agent/main.py")):
    time.sleep(float(os.environ["SLOW_AGENT_S"]))
"""


def slow_agents_env(folder: Path, seconds: float) -> dict[str, str]:
    """Environment for a Ray node whose dashboard and runtime-env agents each take `seconds` to start (a
    `sitecustomize` in `folder`, on PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SLOW_AGENT)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])),
            "SLOW_AGENT_S": str(seconds)}


def post(url: str, body, timeout: float = 30):
    resp = requests.post(url, json=body, timeout=timeout)
    resp.raise_for_status()
    return resp.json()


def replica_pids(dashboard_url: str, app: str, deployment: str) -> list[int]:
    """PIDs of a deployment's RUNNING replicas, from the Serve REST API."""
    dep = ray_ops.status(dashboard_url)["applications"][app]["deployments"][deployment]
    return sorted(r["pid"] for r in dep["replicas"] if r["state"] == "RUNNING")


def ray_answers(dashboard_url: str) -> bool:
    try:
        ray_ops.wait_dashboard(dashboard_url, timeout=1)
        return True
    except TimeoutError:
        return False


def under_load(url: str, body, check, action, recovered, bound_s: float = 90, connections: int = 16,
               tail_s: float = 3, rate: float | None = LOAD_RATE) -> dict:
    """Run `action` under bounded loopback load on `url` once every connection has had an answer, then wait
    (at most `bound_s`) until `recovered()`, and keep the load on for `tail_s` more: what fails then fails
    after the outage. The load is capped in time (a minute for the warm-up, the bound and the tail).
    The report: requests sent and failed, the seconds from the action until recovered, how many failed
    requests were in flight when the action began (a killed process takes them with it), and how many
    failed outside the outage: ended before the action, or sent after recovery (with the first few of
    those timed from the action). A request sent during the outage can fail after it: a client timeout."""
    import time

    from bench.loadgen import Load

    with Load(url, body, connections=connections, duration_s=60 + bound_s + tail_s, check=check, rate=rate) as load:
        load.wait_answered(connections, timeout_s=60)
        start = time.monotonic()
        action()
        while time.monotonic() - start < bound_s and not recovered():
            time.sleep(0.2)
        back = time.monotonic()
        load.finish_in(tail_s)
    result = load.result
    failures = list(zip(result.failure_starts, result.failure_times, result.failure_kinds))
    outside = [f for f in failures if f[1] < start or f[0] > back + 0.5]
    return {**result.summary(), "seconds_until_every_app_answers": round(back - start, 1),
            "within_bound": back - start < bound_s,
            "failed_in_flight_at_the_action": sum(1 for sent, ended, _ in failures if sent < start <= ended),
            "failures_outside_the_outage": len(outside),
            **({"outside": [f"{kind} sent {sent - start:+.2f} s, failed {ended - start:+.2f} s"
                            for sent, ended, kind in outside[:10]]} if outside else {})}
