"""Gated rollouts on the local platform, measured: each scenario of README "Rollouts" run `--rounds` times on a
real local head, under 8 connections of loopback load, loopback only.

  bash bench/setup.sh && .venv/bin/python -m bench.rollout_bench [--rounds 3] [--steps 50,100] [--only "20 % errors"]
      [--proxy haproxy]

The own-app example (copied to a temporary folder, free ports, `serve.proxy: default` unless `--proxy`) is
deployed once per round; then, one after the other, new code is rolled out with `rayserve up`: a good version,
one failing 20 % of its requests, one whose replicas never become healthy, one 3x slower. For each: `up`'s
exit status and seconds, requests sent and failed during the `up`, and what `up` named. Printed as the median
(min-max) over rounds; results in .bench/rollout_bench.json (ignored), with each `up`'s report lines stamped
with the seconds since it started. `--steps` replaces the rollout's steps
(say, a first step at half the traffic, where a bad version's failures come fastest); `--only` runs the named
scenarios alone (the good version first whenever it runs).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from bench.common import spread

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
# min_requests as the package's default: a p99 of 100 requests or more leaves out a one-off stall (its rank
# falls below the slowest request); of 50 it is the slowest, so one stall of the previous version's can pass a
# slower one
ROLLOUT = {"steps": [5, 50, 100], "watch_s": 3, "step_budget_s": 40, "min_requests": 100}
PROXY = "default"  # `serve.proxy`: Serve's own, as the tests use (HAProxy: docs/reliability.md "Gated rollouts")
BASE_DELAY_S = 0.05  # every version's handler waits this; the 3x slower one more (three_times_slower_delay)
ECHO = ROOT / "examples" / "own-app" / "src" / "shop" / "echo.py"


def variant(suffix: str = "?", delay_s: float = BASE_DELAY_S, fail_rate: float = 0.0, unhealthy: bool = False) -> str:
    """The own-app Echo with its answer's suffix, a handler delay, a share of failed requests, or a health check
    that never passes."""
    original = ECHO.read_text()
    code = original.replace('"!" * self.exclaim', f'{suffix!r} * self.exclaim')
    code = code.replace("        text = await request.json()\n", f"""        import asyncio, random
        await asyncio.sleep({delay_s})
        if random.random() < {fail_rate}:
            return JSONResponse({{"error": "injected"}}, status_code=500)
        text = await request.json()
""")
    if unhealthy:
        code = code.replace("    async def __call__(self, request: Request)", """    def check_health(self):
        raise RuntimeError("never healthy")

    async def __call__(self, request: Request)""")
    if code == original:
        raise RuntimeError(f"{ECHO} changed: the rollout variants no longer apply to it")
    return code


def three_times_slower_delay(url: str) -> float:
    """The handler delay (s) of a version 3x slower than the one serving `url` where the gate judges it, at p99:
    the serving version's p99 under the rollouts' load (8 connections for 5 s), measured now, is its BASE_DELAY_S
    plus what the hops and queueing add; a handler waiting twice that p99 more takes 3x as long at p99, and at
    least 3x at the median. Neither a fixed delay nor one from the median does on a busy machine: the hops'
    share, and the tail's, grow with its load (a fixed 300 ms was 2.8x at 140 ms a request and 2.3x at 190;
    twice the median more read 1.88x at p99 where the serving version's p99 was 2.7x its median)."""
    from bench.loadgen import run

    result = run(url, "x", connections=8, duration_s=5)
    if result.failed or len(result.latencies_s) < 100:
        raise RuntimeError(f"measuring the serving version's latency: {result.summary()}")
    p99_s = result.percentile(99)
    delay_s = round(BASE_DELAY_S + 2 * p99_s, 3)
    print(f"  the serving version's median {result.percentile(50) * 1000:.0f} ms and p99 {p99_s * 1000:.0f} ms over "
          f"{result.sent} requests: the 3x slower version's handler waits {delay_s * 1000:.0f} ms", flush=True)
    return delay_s


SCENARIOS = {  # name -> the new code, given the serving URL: the good version answers "hello, X?", every bad one too
    "good version": lambda url: variant("?"),
    "20 % errors": lambda url: variant("?", fail_rate=0.2),
    "never healthy": lambda url: variant("?", unhealthy=True),
    "3x slower": lambda url: variant("?", delay_s=three_times_slower_delay(url)),
}


def own_app(folder: Path, rollout: dict = ROLLOUT) -> dict:
    """The own-app example in `folder`, on free ports, with `rollout` (the settings above): its paths and `run`."""
    from bench.common import free_local_ports, free_port

    project = folder / "own-app"
    shutil.copytree(ROOT / "examples" / "own-app", project, ignore=shutil.ignore_patterns("__pycache__"))
    echo = project / "src" / "shop" / "echo.py"
    echo.write_text(variant("!"))
    stack = project / "Pulumi.local.yaml"
    doc = yaml.safe_load(stack.read_text())
    doc["config"]["rayserve:local"] = free_local_ports()
    doc["config"]["rayserve:serve"].update(http_port=free_port(), proxy=PROXY)
    doc["config"]["rayserve:rollout"] = rollout
    stack.write_text(yaml.safe_dump(doc))

    def command(action: str) -> list[str]:
        return [str(Path(sys.executable).with_name("rayserve")), action, str(stack)]

    def run(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(command(action), capture_output=True, text=True, timeout=600, cwd=project)

    def timed(action: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        """`run`, and each line it reports on stderr stamped with the seconds since its start as it came."""
        start, out, err = time.monotonic(), [], []  # stdout; (seconds, line) of stderr
        with subprocess.Popen(command(action), cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as proc:
            readers = [threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),
                       threading.Thread(target=lambda: err.extend((time.monotonic() - start, line)
                                                                  for line in proc.stderr), daemon=True)]
            for reader in readers:
                reader.start()
            try:
                proc.wait(timeout=600)  # as `run`'s
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            for reader in readers:
                reader.join()
        return (subprocess.CompletedProcess(proc.args, proc.returncode, out[0], "".join(line for _, line in err)),
                [f"{t:6.1f} {line.rstrip()}" for t, line in err])

    return {"project": project, "echo": echo, "run": run, "timed": timed,
            "pid": project / ".pulumi-state" / "local" / "shop" / "ray-head.pid"}


def roll_out(app: dict, url: str, code: str, accepted: tuple[str, ...]) -> dict:
    """`up` with `code` under 8 connections of load (after every connection had an answer); the figures."""
    from bench.loadgen import Load

    app["echo"].write_text(code)
    with Load(url, "x", connections=8, duration_s=600, check=lambda answer: answer in accepted) as load:
        load.wait_answered(8, timeout_s=60)
        start, before = time.monotonic(), (load.result.sent, load.result.failed)
        up, log = app["timed"]("up")
        took = time.monotonic() - start
        sent, failed = load.result.sent - before[0], load.result.failed - before[1]
        load.finish_in(0)
    return {"exit": up.returncode, "up_s": round(took, 1), "sent": sent, "failed": failed,
            "failed_percent": round(100 * failed / max(sent, 1), 3),
            "said": up.stderr.strip().splitlines()[-1] if up.returncode else "", "errors": dict(load.result.errors),
            "log": log}


@contextmanager
def own_app_up(folder: Path, rollout: dict = ROLLOUT) -> Iterator[dict]:
    """The own-app example (own_app) brought up by `rayserve up`: its paths, `run`, and `out` (the outputs). On the
    way out, whatever happened (a first `up` that failed included), it is destroyed and its head and Prometheus
    stopped by their PID files."""
    from rayserve_pulumi.node_agent import procs, ray_ops

    app = own_app(folder, rollout)
    try:
        first = app["run"]("up")
        if first.returncode:
            raise RuntimeError(f"the first up failed: {first.stderr[-3000:]}")
        yield {**app, "out": json.loads(first.stdout)}
    finally:
        app["run"]("destroy")
        ray_ops.stop(app["pid"])
        procs.stop(app["pid"].with_name("prometheus.pid"))


def one_round(scenarios: list[str], rollout: dict) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as folder, own_app_up(Path(folder), rollout) as app:
        url = app["out"]["app_urls"]["echo"]
        serving, answer = app["echo"].read_text(), "hello, X!"
        for name in scenarios:
            accepted = (answer, "hello, X?")  # the serving version's answer, or the new one's (each says "?")
            results[name] = roll_out(app, url, SCENARIOS[name](url), accepted)
            if name == "good version":
                serving, answer = app["echo"].read_text(), "hello, X?"
            else:
                app["echo"].write_text(serving)  # the version that serves
            print(f"  {name:<14} {({k: v for k, v in results[name].items() if k != 'log'})}", flush=True)
    return results


def main() -> dict:
    global PROXY
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", help=f"the rollout's steps, comma-separated (default {ROLLOUT['steps']})")
    parser.add_argument("--only", help="comma-separated scenarios of " + ", ".join(SCENARIOS).replace("%", "%%"))
    parser.add_argument("--proxy", choices=["default", "haproxy"], default=PROXY, help="the stack's serve.proxy")
    a = parser.parse_args()
    PROXY = a.proxy
    try:
        rollout = {**ROLLOUT, **({"steps": [int(x) for x in a.steps.split(",")]} if a.steps else {})}
    except ValueError:
        parser.error(f"--steps: whole percentages, comma-separated (say 50,100), not {a.steps!r}")
    scenarios = [n.strip() for n in a.only.split(",")] if a.only else list(SCENARIOS)
    if unknown := [n for n in scenarios if n not in SCENARIOS]:
        parser.error(f"--only: no scenario {unknown}; the scenarios are {list(SCENARIOS)}")
    scenarios.sort(key=lambda n: n != "good version")
    print(f"rollout settings: {rollout}", flush=True)
    rounds = []
    for i in range(1, a.rounds + 1):
        print(f"round {i}", flush=True)
        rounds.append(one_round(scenarios, rollout))
    summary = {}
    for name in scenarios:
        runs = [r[name] for r in rounds]
        figures = {}
        for key in ("up_s", "sent", "failed", "failed_percent"):
            figures[key] = spread([r[key] for r in runs])
        figures["exit"] = sorted({r["exit"] for r in runs})
        figures["said"] = sorted({r["said"].split("RolledBack: ", 1)[-1][:120] for r in runs if r["said"]})
        summary[name] = figures
    OUT.mkdir(exist_ok=True)
    (OUT / "rollout_bench.json").write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2))
    print(f"{'scenario':<14} {'exit':>6} {'up s':>18} {'sent':>20} {'failed':>14} {'failed %':>20}")
    for name, f in summary.items():
        print(f"{name:<14} {str(f['exit']):>6} {f['up_s']:>18} {f['sent']:>20} {f['failed']:>14} {f['failed_percent']:>20}")
        for said in f["said"]:
            print(f"{'':<14} {said}")
    return summary


if __name__ == "__main__":
    main()
