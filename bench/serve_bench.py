"""Serving benchmarks, all measured in one run on this machine (loopback only), printed as ratios.

  python -m bench.serve_bench [--seconds 10] [--connections 16]

1. local stack cold start (`ray start --head` + REST deploy) to the first 200 on /fruit;
2. user_config change to the first new answer;
3. requests/s and p50/p99 on /fruit through the local stack, with Ray Serve's defaults ("before"),
   with the tuning shipped in serve_apps/serve_config.yaml ("after"), and with that plus
   `serve.proxy: haproxy` ("after_haproxy"); through a bare
   `serve run rayserve_pulumi.serve_apps.fruit:app`; and through plain uvicorn on the same handler (bench/plain_app.py).
Writes bench/results/serve_bench.json and, when matplotlib is installed, bench/results/serve_bench.png.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import free_port
from bench.loadgen import run as load
from rayserve_pulumi.config import LocalSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.node_agent import procs

RESULTS = Path(__file__).resolve().parent / "results"
RUN_DIR = Path(__file__).resolve().parents[1] / ".bench" / "run"  # PID files of what the bench starts (ignored)
BODY = ["MANGO", 1]


def first_200(url: str, expect=None, timeout: float = 300) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            req = urllib.request.Request(url, data=json.dumps(BODY).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200 and (expect is None or json.loads(resp.read()) == expect):
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def untuned(config: dict) -> dict:
    """Ray Serve's defaults: drop the shipped logging and max_ongoing_requests tuning."""
    config = copy.deepcopy(config)
    config["logging_config"] = {"log_level": "INFO", "enable_access_log": True}
    for app in config["applications"]:
        for dep in app.get("deployments", []):
            dep.pop("max_ongoing_requests", None)
    return config


def stack_run(variant: str, seconds: float, connections: int, proxy: str = "default") -> dict:
    settings = LocalSettings(gcs_port=free_port(), dashboard_port=free_port(), num_cpus=4)
    config = build_serve_config(ServeSettings(applications=["fruit"], http_port=free_port()))
    if variant == "before":
        config = untuned(config)
    provider, props = LocalServeProvider(), provider_inputs(settings, config, str(RUN_DIR / variant), proxy=proxy)
    start = time.monotonic()
    result = provider.create(props)
    url = result.outs["app_urls"]["fruit"]
    first_200(url)
    out = {"cold_start_s": round(time.monotonic() - start, 2)}
    load(url, BODY, connections=connections, duration_s=2)  # warm-up
    out["load"] = load(url, BODY, connections=connections, duration_s=seconds).summary()
    changed = copy.deepcopy(config)
    mango = next(d for d in changed["applications"][0]["deployments"] if d["name"] == "MangoStand")
    mango["user_config"] = {"price": 11}
    news = {**props, "serve_config_json": json.dumps(changed, sort_keys=True)}
    updater = threading.Thread(target=provider.update, args=(result.id, result.outs, news))
    t0 = time.monotonic()
    updater.start()
    first_200(url, expect=11)
    out["user_config_to_new_answer_s"] = round(time.monotonic() - t0, 2)
    updater.join()
    provider.delete(result.id, result.outs)
    return out


def process_run(cmd: list[str], url: str, seconds: float, connections: int, env: dict | None = None) -> dict:
    pid_file = RUN_DIR / "process.pid"  # the command and every Ray process it starts share its process group
    procs.spawn(cmd, pid_file, env={**os.environ, **(env or {})}, wait=False)
    try:
        start = time.monotonic()
        first_200(url)
        out = {"cold_start_s": round(time.monotonic() - start, 2)}
        load(url, BODY, connections=connections, duration_s=2)
        out["load"] = load(url, BODY, connections=connections, duration_s=seconds).summary()
        return out
    finally:
        procs.stop(pid_file)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    a = parser.parse_args()
    bin_dir = os.path.dirname(sys.executable)
    results = {"before": stack_run("before", a.seconds, a.connections),
               "after": stack_run("after", a.seconds, a.connections),
               "after_haproxy": stack_run("after", a.seconds, a.connections, proxy="haproxy")}
    results["serve_run"] = process_run([os.path.join(bin_dir, "serve"), "run", "rayserve_pulumi.serve_apps.fruit:app"],
                                       "http://127.0.0.1:8000/fruit", a.seconds, a.connections)
    port = free_port()
    results["uvicorn"] = process_run([sys.executable, "-m", "uvicorn", "bench.plain_app:app", "--port", str(port),
                                      "--log-level", "warning"], f"http://127.0.0.1:{port}/fruit", a.seconds, a.connections)
    rps = {k: v["load"]["rps"] for k, v in results.items()}
    results["ratios"] = {
        "after_vs_before_rps": round(rps["after"] / rps["before"], 2),
        "haproxy_vs_after_rps": round(rps["after_haproxy"] / rps["after"], 2),
        "before_vs_after_p50": round(results["before"]["load"]["p50_ms"] / results["after"]["load"]["p50_ms"], 2),
        "stack_vs_serve_run_rps": round(rps["after"] / rps["serve_run"], 2),
        "stack_vs_uvicorn_rps": round(rps["after"] / rps["uvicorn"], 3),
        "cold_start_stack_vs_serve_run": round(results["after"]["cold_start_s"] / results["serve_run"]["cold_start_s"], 2),
    }
    results["settings"] = {"seconds": a.seconds, "connections": a.connections, "cpus": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_bench.json").write_text(json.dumps(results, indent=2))
    plot(results)
    print(json.dumps(results, indent=2))
    return results


def plot(results: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    names = ["before", "after", "after_haproxy", "serve_run", "uvicorn"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.bar(names, [results[n]["load"]["rps"] for n in names], color=["#bbb", "#2a7", "#1a5", "#58c", "#c84"])
    ax1.set_title("requests/s (higher is better)")
    ax1.set_yscale("log")
    x = range(len(names))
    ax2.bar([i - 0.2 for i in x], [results[n]["load"]["p50_ms"] for n in names], width=0.4, label="p50")
    ax2.bar([i + 0.2 for i in x], [results[n]["load"]["p99_ms"] for n in names], width=0.4, label="p99")
    ax2.set_xticks(list(x), names)
    ax2.set_yscale("log")
    ax2.set_title("latency ms (lower is better)")
    ax2.legend()
    fig.suptitle(f"/fruit, {results['settings']['connections']} connections, {results['settings']['cpus']} CPUs, loopback")
    fig.tight_layout()
    fig.savefig(RESULTS / "serve_bench.png", dpi=110)


if __name__ == "__main__":
    main()
