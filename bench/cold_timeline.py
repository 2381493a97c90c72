"""Where a cold `up` of the main job goes, in time: one cold `up` (fruit and calc, the bench's stack of
bench.up_bench), then `destroy`. Prints, in seconds from the command's start, the command's progress lines
and when each process of the Ray head's and Prometheus' sessions started, with the CPU seconds it had spent
when the `up` returned (processes that exited before, such as Serve's build tasks, show no figure), then how
busy both CPUs were in each half second. Asserts nothing.

  python -m bench.cold_timeline [--every-app]

--every-app runs the shipped stack instead (stacks/Pulumi.local.yaml: the text app too, as
bench.cold_start_bench does) and goes on sampling after `up` returns until each application has answered its
seed request (each polled on a thread of its own, every 50 ms), printing when each did; the CPU seconds are
then those spent when the last one answered.

It samples /proc every 50 ms, which costs this process about 0.3 CPU-seconds: its total runs a little
above bench.up_bench's. Used for the README's account of a cold `up` and for A/B runs of a change.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time

import yaml

from bench import cpu
from bench.cold_start_bench import SEEDS, answers, app_urls, deployed, stack_values
from bench.up_bench import STACK_FILE, STATE, WORK, bench_stack, cli, cpu_ticks
from rayserve_pulumi.local.args import RUN_DIR
from rayserve_pulumi.node_agent import procs

CLK = os.sysconf("SC_CLK_TCK")


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _sample(after: float, seen: dict[int, list]) -> None:
    """Add to `seen` (pid -> [start, session, label]) every process started after `after` (seconds since
    boot), and name the live ones anew: a Ray worker takes its actor's name once it has one."""
    for entry in os.listdir("/proc"):
        pid = int(entry) if entry.isdigit() else None
        if pid is None or (pid not in seen and not ((f := procs.stat_fields(pid)) and int(f[19]) / CLK >= after)):
            continue
        if (name := cpu.label(pid)) is None:
            continue  # exited meanwhile
        if pid in seen:
            seen[pid][2] = name
        else:
            seen[pid] = [int(f[19]) / CLK, int(f[3]), name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every-app", action="store_true", help="the shipped stack, until every app answers")
    args = parser.parse_args()
    if args.every_app:
        WORK.mkdir(exist_ok=True)
        STATE.unlink(missing_ok=True)
        values = stack_values()
        waiting = app_urls(deployed(values)[0])
    else:
        values, waiting = bench_stack(), {}
    STACK_FILE.write_text(yaml.safe_dump({"config": values}))
    seen: dict[int, list] = {}
    lines: list[tuple[float, str]] = []
    busy: list[tuple[float, float]] = []
    t0 = _since_boot()
    command = subprocess.Popen(cli("up"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def progress() -> None:
        for line in command.stderr:
            lines.append((_since_boot() - t0, line.rstrip()))

    def seed(app: str, url: str) -> None:
        while _since_boot() - t0 < 600:
            if answers(url, *SEEDS[app]):
                lines.append((_since_boot() - t0, f"** {app} answered its seed request"))
                return
            time.sleep(0.05)

    reader = threading.Thread(target=progress)
    pollers = [threading.Thread(target=seed, args=item, daemon=True) for item in waiting.items()]
    for thread in (reader, *pollers):
        thread.start()
    last, last_t = cpu_ticks(), 0.0
    try:
        while command.poll() is None or any(t.is_alive() for t in pollers):
            time.sleep(0.05)
            _sample(t0 - 0.1, seen)
            now = _since_boot() - t0
            if now - last_t >= 0.5:
                ticks = cpu_ticks()
                busy.append((last_t, 100 * (ticks[0] - last[0]) / max(1, ticks[1] - last[1])))
                last, last_t = ticks, now
        reader.join()
        total = _since_boot() - t0
        sessions = {entry["sid"] for f in (WORK / RUN_DIR).rglob("*.pid") if (entry := procs.read(f))}
        events = list(lines)
        for pid, (start, sid, name) in seen.items():
            if sid in sessions:
                fields = procs.stat_fields(pid)
                spent = f"  [{(int(fields[11]) + int(fields[12])) / CLK:.2f} CPU s]" if fields else "  (exited)"
                events.append((start - t0, name + spent))
    finally:
        subprocess.run(cli("destroy"), capture_output=True, timeout=300)
    if command.returncode != 0:
        raise SystemExit(f"up failed: {lines[-1][1] if lines else command.returncode}")
    print(f"cold up {'and every seed answer ' if pollers else ''}done after {total:.2f} s")
    for at, text in sorted(events):
        print(f"{at:6.2f}  {text}")
    print("CPU busy % per half second: " + " ".join(f"{at:.1f}:{pct:.0f}" for at, pct in busy))


if __name__ == "__main__":
    main()
