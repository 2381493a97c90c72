"""Cold start of the shipped local stack against the Ray Serve documentation's way, in one run. Prints
figures; asserts nothing.

  python -m bench.cold_start_bench [--rounds 3]

Each round, in alternating order:
- shipped: `rayserve up` (what `bash scripts/up.sh` runs without a Pulumi CLI) on a copy of
  stacks/Pulumi.local.yaml (every bundled app, metrics on; free ports, no state: the first `up` ever);
- by hand: `ray start --head` then `serve deploy` of the very Serve config the stack deploys, with Ray's
  defaults: only `RAY_AUTH_MODE=token` (as the stack runs), where the text app finds its model, and a temp
  folder of its own (`RAY_TMPDIR`, removed afterwards) in place of the machine's shared /tmp/ray.
Each is timed from its first command until every application answers its seed request (polled every
50 ms from the start), then stopped by its PID file. Prints every round, the medians with min–max, and the
ratio (shipped / by hand) of each round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from bench.common import free_local_ports, free_port, own_ray_tmpdir
from bench.up_bench import ROOT, STATE, STACK_FILE, WORK, cli
from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.serve_apps.seq2seq import MODELS_ENV

SEED_SENTENCE = "Ray Serve is a scalable model serving library for building online inference APIs."
SEEDS = {"fruit": (["MANGO", 2], lambda a: a == 6), "calc": (["MUL", 3], lambda a: a == "15 pizzas please!"),
         "summarize_translate": (SEED_SENTENCE, lambda a: isinstance(a, str) and a != "")}


def answers(url: str, body, check) -> bool:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return check(json.loads(resp.read()))
    except (OSError, ValueError):
        return False


def until_every_app_answers(urls: dict[str, str], t0: float, timeout: float = 600) -> float:
    """Seconds from t0 until each app has answered its seed request once."""
    waiting = dict(urls)
    while waiting and time.perf_counter() - t0 < timeout:
        for app, url in list(waiting.items()):
            if answers(url, *SEEDS[app]):
                del waiting[app]
        time.sleep(0.05)
    if waiting:
        raise SystemExit(f"no answer from {sorted(waiting)} within {timeout:.0f} s")
    return time.perf_counter() - t0


def stack_values() -> dict:
    """stacks/Pulumi.local.yaml's config on free ports: every bundled app, as shipped."""
    values = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"]
    values["rayserve:local"] = {**values["rayserve:local"], **free_local_ports(), "models_dir": str(ROOT / ".models")}
    values["rayserve:serve"] = {**values["rayserve:serve"], "http_port": free_port()}
    values["rayserve:metrics"] = {**values.get("rayserve:metrics", {}), "prometheus_port": free_port()}
    return values


def deployed(values: dict) -> tuple[dict, dict[str, str]]:
    """The Serve config `up` deploys for these stack values, byte for byte, and where its text app finds
    its model."""
    cfg, serve_config = validate_stack({k.split(":", 1)[1]: v for k, v in values.items()}, ROOT)
    props = provider_inputs(cfg.local, serve_config, str(WORK), cfg.serve.runtime_env(),
                            str(ROOT / ".models"), cfg.metrics)
    return (json.loads(props["serve_config_json"]),
            {k: v for k, v in props["ray_env"].items() if k == MODELS_ENV})


def app_urls(config: dict) -> dict[str, str]:
    port = config["http_options"]["port"]
    return {a["name"]: f"http://127.0.0.1:{port}{a['route_prefix']}" for a in config["applications"]}


def shipped(values: dict, urls: dict[str, str]) -> float:
    STACK_FILE.write_text(yaml.safe_dump({"config": values}))
    STATE.unlink(missing_ok=True)
    t0 = time.perf_counter()
    up = subprocess.Popen(cli("up"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seconds = until_every_app_answers(urls, t0)
        if up.wait(timeout=600) != 0:
            raise SystemExit(f"rayserve up failed: {up.stderr.read()[-2000:]}")
        return seconds
    finally:
        up.wait(timeout=600)
        subprocess.run(cli("destroy"), capture_output=True, timeout=300)


def by_hand(config: dict, urls: dict[str, str], models_env: dict[str, str]) -> float:
    """`ray start --head` (its own session, recorded in a PID file) then `serve deploy`, Ray's defaults (its temp
    folder aside: bench.common.own_ray_tmpdir)."""
    gcs, dash = free_port(), free_port()
    config_file, pid_file = WORK / "by_hand_serve_config.yaml", WORK / "by_hand" / "ray.pid"
    config_file.write_text(yaml.safe_dump(config))
    # Ray's defaults, with token auth as Ray documents it (the shipped stack runs with a token too)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | models_env | {"RAY_AUTH_MODE": "token"}
    bin_dir = Path(sys.executable).parent
    with own_ray_tmpdir() as tmp:
        env |= tmp
        t0 = time.perf_counter()
        try:
            procs.spawn([str(bin_dir / "ray"), "start", "--head", f"--port={gcs}", f"--dashboard-port={dash}",
                         "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", "--num-cpus=4",
                         "--disable-usage-stats"], pid_file, env=env, timeout=300)
            deploy = subprocess.run([str(bin_dir / "serve"), "deploy", str(config_file), "--address",
                                     f"http://127.0.0.1:{dash}"], env=env, capture_output=True, text=True,
                                    timeout=300)
            if deploy.returncode != 0:
                raise SystemExit(f"serve deploy failed: {deploy.stderr[-3000:]}")
            return until_every_app_answers(urls, t0)
        finally:
            ray_ops.stop(pid_file)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    (WORK / "by_hand").mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[float]] = {"shipped": [], "by_hand": []}
    for round_ in range(args.rounds):
        values = stack_values()
        config, models_env = deployed(values)
        urls = app_urls(config)
        order = ("shipped", "by_hand") if round_ % 2 == 0 else ("by_hand", "shipped")
        for way in order:
            runs[way].append(shipped(values, urls) if way == "shipped" else by_hand(config, urls, models_env))
        print(f"round {round_ + 1}: shipped {runs['shipped'][-1]:.2f} s, by hand {runs['by_hand'][-1]:.2f} s, "
              f"ratio {runs['shipped'][-1] / runs['by_hand'][-1]:.3f}", flush=True)
    ratios = [s / h for s, h in zip(runs["shipped"], runs["by_hand"])]
    print(f"\ncold start until every app answers, median (min–max) of {args.rounds} rounds:")
    print(f"  shipped local stack (rayserve up)      {spread(runs['shipped'])} s")
    print(f"  ray start --head + serve deploy        {spread(runs['by_hand'])} s")
    print(f"  ratio shipped / by hand, per round     {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
