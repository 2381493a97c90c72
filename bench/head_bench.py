"""How long the local Ray head takes to start, run after run, and how long its raylet waited to connect to
its own object store. Ray retries that connection after 1000 ms when the store thread it has just started
is not listening yet; `local` retries every 100 ms (lifecycle.IPC_CONNECT_RETRY). Asserts nothing.

  python -m bench.head_bench [--runs N] [--ray-defaults]

Each run starts a head as `up` does (local.head with lifecycle.head_env, free ports, Ray token auth, no
Serve), reads the raylet's log for the time between creating the store and its ObjectManager server
starting, and stops the head by its PID file. `--ray-defaults` starts it with Ray's retry settings and
start-up cap instead (what `local` did before), for an A/B on the same hour.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

from bench.common import free_local_ports
from bench.up_bench import WORK
from rayserve_pulumi.config import LocalSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local.lifecycle import head_env, head_pid_file, provider_inputs, spawn_head
from rayserve_pulumi.node_agent import procs, ray_ops

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def _at(line: str) -> datetime:
    return datetime.strptime(STAMP.match(line).group(1), "%Y-%m-%d %H:%M:%S,%f")


def store_connect_wait(raylet_log: Path) -> float:
    """Seconds from the raylet creating its object store to its ObjectManager server starting (the raylet
    connects to the store in between)."""
    lines = raylet_log.read_text(errors="replace").splitlines()
    created = next(line for line in lines if "create_and_mmap_buffer" in line)
    started = next(line for line in lines if "ObjectManager server started" in line)
    return (_at(started) - _at(created)).total_seconds()


def raylet_log(pid_file: Path) -> Path:
    """The raylet.out of the head's session (the raylet's --log_dir)."""
    for argv in procs.commands(procs.read(pid_file)["sid"]).values():
        if argv and argv[0].endswith("/raylet"):
            log_dir = next(a for a in argv if a.startswith("--log_dir=")).split("=", 1)[1]
            return Path(log_dir) / "raylet.out"
    raise RuntimeError("no raylet in the head's session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--ray-defaults", action="store_true", help="Ray's retry settings and start-up cap")
    args = parser.parse_args()
    (WORK / "head_bench").mkdir(parents=True, exist_ok=True)
    starts, waits = [], []
    serve_config = build_serve_config(ServeSettings(applications=["fruit"]))
    for run in range(args.runs):
        props = provider_inputs(LocalSettings(**free_local_ports()), serve_config, str(WORK / "head_bench"))
        pid_file = head_pid_file(props)
        begin = time.perf_counter()
        spawn_head(props, props["ray_env"] if args.ray_defaults else head_env(props))
        starts.append(time.perf_counter() - begin)
        try:
            waits.append(store_connect_wait(raylet_log(pid_file)))
        finally:
            ray_ops.stop(pid_file)
        print(f"run {run + 1}: head started in {starts[-1]:.2f} s, raylet waited {waits[-1]:.2f} s for its store")
    print(f"median head start {statistics.median(starts):.2f} s; the raylet waited >= 0.1 s in "
          f"{sum(w >= 0.1 for w in waits)} of {len(waits)} runs")


if __name__ == "__main__":
    main()
