"""The main job's timings, as `scripts/up.sh` lives them without a Pulumi CLI: the same command it runs
(`rayserve up`), on a copy of stacks/Pulumi.local.yaml (free ports, fruit and
calc) kept in .bench/ (ignored). Prints figures; asserts nothing.

  python -m bench.up_bench

1. set-up with nothing to install (`bash scripts/setup.sh`);
2. cold `up` (Ray start + deploy) to its return, and its parts as the command reports them (Ray head
   start, every application RUNNING), how busy the machine's CPUs were meanwhile (/proc/stat: every
   process, exited ones included), and the CPU time each process of the head spent getting there;
3. `up` with nothing changed;
4. `up` after a user_config change: when the new answer first arrives (a 20 Hz poller on /fruit) and
   when the command returns, both from the command's start; and the new answer once more with no verdict
   recorded in the state (what the full validation costs: config.verdict reuses none then);
5. `destroy`, then a cold `up` of the same config again (as after a reboot: the state keeps the validation
   verdict, so this `up` runs no full validation);
6. the floor under every `up`: a bare interpreter importing `ray.serve.schema`, which validation needs (median of 3).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from bench import cpu
from bench.common import free_local_ports, free_port
from rayserve_pulumi.config import parse_stack_config, read_stack_file
from rayserve_pulumi.local.args import RUN_DIR
from rayserve_pulumi.node_agent import procs

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"


def _answer(url: str):
    req = urllib.request.Request(url, data=json.dumps(["MANGO", 1]).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def by_process(sample: dict) -> dict[str, float]:
    """CPU seconds by process label, Serve's replicas on one line (each costs about the same: a Ray worker
    importing Serve and its app)."""
    replicas = sum(1 for _, label in sample.values() if label.startswith("ray::ServeReplica"))
    return cpu.totals(sample, lambda label: f"ray::ServeReplica ({replicas} replicas)"
                      if label.startswith("ray::ServeReplica") else label)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot (/proc/stat): what a step left unused."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


STACK_FILE, STATE = WORK / "Pulumi.local.yaml", WORK / "state.json"


def bench_stack() -> dict:
    """A fresh copy of stacks/Pulumi.local.yaml's config with free ports, fruit and calc, and no state: what
    both cold-start benches run (the caller writes it to STACK_FILE)."""
    WORK.mkdir(exist_ok=True)
    STATE.unlink(missing_ok=True)
    values = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"]
    values["rayserve:local"] = {**values["rayserve:local"], **free_local_ports(),
                                "models_dir": str(ROOT / ".models")}
    values["rayserve:serve"] = {"applications": ["fruit", "calc"], "http_port": free_port()}
    values["rayserve:metrics"] = {**values.get("rayserve:metrics", {}), "prometheus_port": free_port()}
    return values


def cli(action: str) -> list[str]:
    """The command `scripts/up.sh` runs, on the bench's stack. The program directory is .bench/: its PID files
    never meet those of a stack you run from the checkout."""
    return [sys.executable, "-m", "rayserve_pulumi.cli", action, str(STACK_FILE),
            "--state", str(STATE), "--program-dir", str(WORK)]


def main() -> None:
    stack_file, state, values = STACK_FILE, STATE, bench_stack()

    def write(price: int) -> None:
        values["rayserve:serve"]["overrides"] = {"fruit": {"MangoStand": {"user_config": {"price": price}}}}
        stack_file.write_text(yaml.safe_dump({"config": values}))

    reported: dict[str, float] = {}

    def run(action: str) -> tuple[float, dict]:
        start = time.perf_counter()
        proc = subprocess.run(cli(action), capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        for key, pattern in (("ray_head_start_s", r"Ray head started in ([\d.]+) s"),
                             ("deploy_until_running_s", r"every application RUNNING after ([\d.]+) s")):
            if (m := re.search(pattern, proc.stderr)) and key not in reported:
                reported[key] = float(m.group(1))
        return time.perf_counter() - start, json.loads(proc.stdout)

    start = time.perf_counter()
    subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], check=True)
    figures = {"setup_nothing_to_install_s": time.perf_counter() - start}
    write(3)
    try:
        busy0, total0, command0 = *cpu_ticks(), cpu.children_ms()
        figures["cold_up_s"], out = run("up")
        busy1, total1 = cpu_ticks()
        figures["cold_up_cpu_busy_%"] = 100 * (busy1 - busy0) / (total1 - total0)
        figures.update({f"  of which {k}": v for k, v in reported.items()})
        head = procs.read(WORK / RUN_DIR / parse_stack_config(read_stack_file(stack_file)).name / "ray-head.pid")
        command = "the command: validation, then the head launcher (local.head), which it waits for"
        spent = {command: (cpu.children_ms() - command0) / 1000, **by_process(cpu.session_ms(head["sid"]))}
        figures["up_nothing_changed_s"], _ = run("up")
        url = out["app_urls"]["fruit"]

        def change(price: int) -> tuple[float, float]:
            """Write a new MangoStand price, run `up`: (seconds to the first new answer, to the command's return)."""
            write(price)
            seen: dict[str, float] = {}

            def poll(t0: float) -> None:
                while time.perf_counter() - t0 < 120 and "new_answer_s" not in seen:
                    if _answer(url) == price:
                        seen["new_answer_s"] = time.perf_counter() - t0
                    time.sleep(0.05)

            poller = threading.Thread(target=poll, args=(time.perf_counter(),))
            poller.start()
            returns, _ = run("up")
            poller.join()
            return seen.get("new_answer_s", float("nan")), returns

        figures["up_user_config_new_answer_s"], figures["up_user_config_returns_s"] = change(7)
        figures["returned_after_new_answer_s"] = figures["up_user_config_returns_s"] - figures["up_user_config_new_answer_s"]
        recorded = json.loads(state.read_text())
        state.write_text(json.dumps({k: v for k, v in recorded.items() if k != "verdict"}))  # as a first `up` would
        figures["same_without_a_recorded_verdict_s"], _ = change(8)
        figures["destroy_s"], _ = run("destroy")
        figures["cold_up_after_destroy_s"], _ = run("up")  # the same config: its recorded verdict is reused
    finally:
        run("destroy")
    imports = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ray.serve.schema"], check=True)
        imports.append(time.perf_counter() - start)
    figures["import_ray_serve_schema_s"] = sorted(imports)[1]
    for key, value in figures.items():
        print(f"{key:<32} {value:7.2f}")
    print(f"\nCPU seconds of the cold up by process ({sum(spent.values()):.1f} s in all; processes that exited "
          "meanwhile other than the command's own are not counted):")
    for label, seconds in spent.items():
        print(f"  {seconds:6.2f}  {label}")


if __name__ == "__main__":
    main()
