"""Serving throughput with wrk (a C load generator), every variant in one run on this machine, loopback only.

  bash bench/setup.sh && .venv/bin/python -m bench.serve_bench [--rounds 3] [--seconds 10] [--connections 16] [--publish]
  .venv/bin/python -m bench.serve_bench --only stack_default,tried_market_code_on_thread --repeat 3

For each variant: cold start (command to the first 200 on /fruit), a 3 s wrk warm-up, then wrk for
`--seconds`; POST ["MANGO", 1]. Variants:
  uvicorn                  bench/plain_app.py: the same answer, no Ray (the ceiling)
  serve_run                bare `serve run rayserve_pulumi.serve_apps.fruit:app`, Serve's defaults
  one_deployment           `serve run bench.one_deployment:app`: one deployment, no handle hop
  one_deployment_haproxy   the same with Ray's HAProxy ingress
  stack_python_proxy       the local stack, Serve's Python proxy, Serve's default settings
  stack_haproxy            the local stack, HAProxy ingress, Serve's default settings
  stack_default            the local stack as shipped: HAProxy and Serve's throughput-optimized settings
with `--tried`, also what was tried and not kept:
  tried_user_code_on_loop  the default with every replica's user code on its event loop (Serve's optimized default)
  tried_market_code_on_thread the default with the FruitMarket's user code on a thread of its own, as the others
  tried_two_markets        the default with two FruitMarket replicas
  tried_actor_calls        the default with handle calls as Ray actor calls instead of gRPC
  tried_one_order_per_call the default with one handle call per order (FruitMarket user_config orders_per_call: 1)
  tried_haproxy_four_threads the default with Ray's four HAProxy threads instead of local.haproxy_threads' one
and for every stack variant the CPU ms per request of each process of the head and of wrk during the measured
run; for the default stack: a `user_config` change to the first new answer, and destroy. The Python load
generator of the reliability tests (bench/loadgen.py) is run against uvicorn too, to show why it is not
used for throughput. Results go to .bench/serve_bench.json and .bench/serve_bench.png (ignored);
`--publish` copies them to bench/results/ for the README.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Optional

import yaml

from bench import cpu, wrk
from bench.common import free_local_ports, free_port, own_ray_tmpdir
from bench.loadgen import run as python_load
from rayserve_pulumi.config import LocalSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.local.lifecycle import head_pid_file
from rayserve_pulumi.node_agent import procs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
RUN_DIR = OUT / "run"  # PID files of what the bench starts
PUBLISHED = ROOT / "bench" / "results"
BODY = ["MANGO", 1]
# name -> (Serve settings, extra Ray environment, deployment overrides[, local settings])
STACK_VARIANTS = {
    "stack_python_proxy": (ServeSettings(proxy="default", throughput_optimized=False), {}, {}),
    "stack_haproxy": (ServeSettings(proxy="haproxy", throughput_optimized=False), {}, {}),
    "stack_default": (ServeSettings(), {}, {}),
}
TRIED = {
    "tried_user_code_on_loop": (ServeSettings(), {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}, {}),
    "tried_market_code_on_thread": (ServeSettings(), {}, {"fruit": {"FruitMarket": {"ray_actor_options": {
        "num_cpus": 0.1, "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}}}}}}),
    "tried_two_markets": (ServeSettings(), {}, {"fruit": {"FruitMarket": {"num_replicas": 2}}}),
    "tried_actor_calls": (ServeSettings(), {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "0"}, {}),
    "tried_one_order_per_call": (ServeSettings(), {}, {"fruit": {"FruitMarket": {"user_config": {"orders_per_call": 1}}}}),
    "tried_haproxy_four_threads": (ServeSettings(), {}, {}, {"haproxy_threads": 4}),
}


def first_200(url: str, expect=None, timeout: float = 300) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            req = urllib.request.Request(url, data=json.dumps(BODY).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200 and (expect is None or json.loads(resp.read()) == expect):
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} gave no 200 in {timeout} s")


def measure(url: str, seconds: float, connections: int, session: Optional[int] = None) -> dict:
    """A 3 s warm-up, then the measured wrk run; with the head's `session`, CPU ms per request of each of its
    processes and of wrk during that run."""
    wrk.run(url, BODY, seconds=3, connections=connections)  # warm-up
    if session is None:
        return wrk.run(url, BODY, seconds=seconds, connections=connections)
    before, wrk_before = cpu.session_ms(session), cpu.children_ms()
    out = wrk.run(url, BODY, seconds=seconds, connections=connections)
    after, wrk_after = cpu.session_ms(session), cpu.children_ms()
    return {**out, "cpu_ms_per_request": {**cpu.per_request(before, after, out["requests"]),
                                          "wrk": round((wrk_after - wrk_before) / out["requests"], 3)}}


def stack_run(name: str, variant: tuple, seconds: float, connections: int) -> dict:
    serve, env, overrides, *local = variant
    settings = LocalSettings(**free_local_ports(), num_cpus=4, **(local[0] if local else {}))
    config = build_serve_config(ServeSettings(applications=["fruit"], http_port=free_port(), overrides=overrides))
    provider = LocalServeProvider()
    props = provider_inputs(settings, config, str(RUN_DIR / name), {**serve.runtime_env(), **env})
    start = time.monotonic()
    result = provider.create(props)
    out: dict = {}
    try:
        url = result.outs["app_urls"]["fruit"]
        first_200(url)
        session = procs.read(head_pid_file(props))["sid"]
        out.update(cold_start_s=round(time.monotonic() - start, 2), **measure(url, seconds, connections, session))
        if name == "stack_default":
            changed = json.loads(props["serve_config_json"])
            mango = next(d for d in changed["applications"][0]["deployments"] if d["name"] == "MangoStand")
            mango["user_config"] = {"price": 11}
            news = {**props, "serve_config_json": json.dumps(changed, sort_keys=True)}
            updater = threading.Thread(target=provider.update, args=(result.id, result.outs, news))
            t0 = time.monotonic()
            updater.start()
            first_200(url, expect=11)
            out["user_config_to_new_answer_s"] = round(time.monotonic() - t0, 2)
            updater.join()
            out["update_returns_s"] = round(time.monotonic() - t0, 2)
    finally:
        t0 = time.monotonic()
        provider.delete(result.id, result.outs)
        out["destroy_s"] = round(time.monotonic() - t0, 2)
    return out


def serve_run(name: str, import_path: str, env: dict, seconds: float, connections: int) -> dict:
    """`serve run` of a one-app config on a free port, in a session of its own (stopped by its PID file) and a
    temp folder of its own (removed afterwards)."""
    port = free_port()
    config = OUT / f"{name}.serve.yaml"
    config.write_text(yaml.safe_dump({"http_options": {"host": "127.0.0.1", "port": port},
                                      "applications": [{"name": "fruit", "route_prefix": "/fruit",
                                                        "import_path": import_path}]}))
    pid_file = RUN_DIR / f"{name}.pid"
    serve = os.path.join(os.path.dirname(sys.executable), "serve")
    with own_ray_tmpdir() as tmp:
        # `--address local`: a Ray of its own, never whichever cluster /tmp/ray/ray_current_cluster names
        procs.spawn([serve, "run", "--address", "local", str(config)], pid_file,
                    env={**os.environ, "RAY_AUTH_MODE": "disabled", **env, **tmp},
                    log_file=OUT / f"{name}.log", wait=False)
        try:
            start = time.monotonic()
            first_200(f"http://127.0.0.1:{port}/fruit")
            return {"cold_start_s": round(time.monotonic() - start, 2),
                    **measure(f"http://127.0.0.1:{port}/fruit", seconds, connections)}
        finally:
            procs.stop(pid_file, grace_s=2)


def uvicorn_run(seconds: float, connections: int) -> dict:
    port, pid_file = free_port(), RUN_DIR / "uvicorn.pid"
    procs.spawn([sys.executable, "-m", "uvicorn", "bench.plain_app:app", "--port", str(port), "--log-level",
                 "warning"], pid_file, log_file=OUT / "uvicorn.log", wait=False)
    try:
        url = f"http://127.0.0.1:{port}/fruit"
        start = time.monotonic()
        first_200(url)
        out = {"cold_start_s": round(time.monotonic() - start, 2), **measure(url, seconds, connections)}
        python = python_load(url, BODY, connections=connections, duration_s=seconds).summary()
        out["python_loadgen_rps"] = python["rps"]  # the same server, bench/loadgen.py as the client
        return out
    finally:
        procs.stop(pid_file, grace_s=2)


def one_round(a) -> dict:
    """Every variant once (the ceiling and the baselines first), and the ratios of this round."""
    results = {"uvicorn": uvicorn_run(a.seconds, a.connections),
               "serve_run": serve_run("serve_run", "rayserve_pulumi.serve_apps.fruit:app", {}, a.seconds, a.connections),
               "one_deployment": serve_run("one_deployment", "bench.one_deployment:app", {}, a.seconds, a.connections),
               "one_deployment_haproxy": serve_run("one_deployment_haproxy", "bench.one_deployment:app",
                                                   {"RAY_SERVE_ENABLE_HA_PROXY": "1"}, a.seconds, a.connections)}
    for name, variant in {**STACK_VARIANTS, **(TRIED if a.tried else {})}.items():
        results[name] = stack_run(name, variant, a.seconds, a.connections)
    rps = {k: v["rps"] for k, v in results.items()}
    results["ratios"] = {
        "stack_default_vs_serve_run": round(rps["stack_default"] / rps["serve_run"], 1),
        "stack_default_vs_uvicorn": round(rps["stack_default"] / rps["uvicorn"], 3),
        "stack_default_vs_stack_python_proxy": round(rps["stack_default"] / rps["stack_python_proxy"], 2),
        "stack_haproxy_vs_stack_python_proxy": round(rps["stack_haproxy"] / rps["stack_python_proxy"], 2),
        "wrk_vs_python_loadgen_on_uvicorn": round(rps["uvicorn"] / results["uvicorn"]["python_loadgen_rps"], 1),
    }
    print(f"round: {json.dumps(results['ratios'])}", flush=True)
    return results


def summarise(rounds: list[dict]) -> dict:
    """Each numeric figure of each variant and each ratio as its median over the rounds, with `<key>_range`
    (min, max) beside it; a table of figures (CPU ms per request by process) as each entry's median, over
    the rounds that have it; `rounds` keeps every round."""
    import statistics

    out: dict = {"rounds": rounds}
    for name, first in rounds[0].items():
        if not isinstance(first, dict):
            continue
        merged = {}
        for key, value in first.items():
            values = [r[name][key] for r in rounds if isinstance(r[name].get(key), (int, float))]
            if values and len(values) == len(rounds):
                merged[key] = statistics.median(values)
                merged[f"{key}_range"] = [min(values), max(values)]
            elif isinstance(value, dict):
                tables = [r[name][key] for r in rounds if isinstance(r[name].get(key), dict)]
                merged[key] = {k: round(statistics.median(t[k] for t in tables if k in t), 3)
                               for k in dict.fromkeys(k for t in tables for k in t)}
            else:
                merged[key] = value
        out[name] = merged
    return out


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--publish", action="store_true", help="copy the results to bench/results/ (README)")
    parser.add_argument("--tried", action="store_true", help="also the variants tried and not kept")
    parser.add_argument("--only", help="comma-separated stack variants to run alone, alternating, --repeat times "
                                       "(to tell a difference from this machine's noise); prints req/s, no ratios")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --only")
    parser.add_argument("--rounds", type=int, default=1, help="full runs of every variant, one after the other; "
                                                              "prints each figure's median (min-max) and each "
                                                              "round's ratios")
    a = parser.parse_args()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    if a.only:
        variants = {**STACK_VARIANTS, **TRIED}
        names = a.only.split(",")
        if unknown := [n for n in names if n not in variants]:
            parser.error(f"--only: unknown variant(s) {unknown}; use {', '.join(variants)}")
        for round_ in range(1, a.repeat + 1):
            for name in names:
                r = stack_run(name, variants[name], a.seconds, a.connections)
                print(f"round {round_} {name:<28} {r['rps']:>9} req/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms",
                      flush=True)
        return {}
    rounds = [one_round(a) for _ in range(max(1, a.rounds))]
    results = rounds[len(rounds) // 2] if len(rounds) == 1 else summarise(rounds)
    results["settings"] = {"seconds": a.seconds, "connections": a.connections, "cpus": os.cpu_count(),
                           "client": "wrk -t2 on the same machine"}
    (OUT / "serve_bench.json").write_text(json.dumps(results, indent=2))
    plot(results)
    if a.publish:
        PUBLISHED.mkdir(exist_ok=True)
        for name in ("serve_bench.json", "serve_bench.png"):
            if (OUT / name).exists():
                shutil.copy(OUT / name, PUBLISHED / name)
    def shown(r: dict, key: str) -> str:
        spread = r.get(f"{key}_range")
        return f"{r[key]}" + (f" ({spread[0]}-{spread[1]})" if spread else "")

    print(f"{'variant':<24} {'cold s':>16} {'req/s':>22} {'p50 ms':>20} {'p99 ms':>20}")
    for name, r in results.items():
        if isinstance(r, dict) and "rps" in r:
            print(f"{name:<24} {shown(r, 'cold_start_s'):>16} {shown(r, 'rps'):>22} {shown(r, 'p50_ms'):>20} "
                  f"{shown(r, 'p99_ms'):>20}")
    print(json.dumps({k: results[k] for k in ("ratios", "stack_default")}, indent=2))
    return results


def plot(results: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (bash bench/setup.sh installs it)")
        return
    names = [n for n, r in results.items() if "rps" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    ax1.barh(names, [results[n]["rps"] for n in names], color="#2a7")
    ax1.set_xscale("log")
    ax1.set_title("requests/s (wrk, higher is better)")
    y = range(len(names))
    ax2.barh([i - 0.2 for i in y], [results[n]["p50_ms"] for n in names], height=0.4, label="p50")
    ax2.barh([i + 0.2 for i in y], [results[n]["p99_ms"] for n in names], height=0.4, label="p99")
    ax2.set_yticks(list(y), names)
    ax2.set_xscale("log")
    ax2.set_title("latency ms (lower is better)")
    ax2.legend()
    s = results["settings"]
    fig.suptitle(f"POST /fruit, {s['connections']} connections, {s['seconds']:.0f} s, {s['cpus']} CPUs, loopback")
    fig.tight_layout()
    fig.savefig(OUT / "serve_bench.png", dpi=110)


if __name__ == "__main__":
    main()
