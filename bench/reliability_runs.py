"""The reliability and failure-recovery scenarios, run several times: each scenario's figures as the median
and range over the runs. Prints figures; asserts nothing (the tests assert each scenario's bound).

  .venv/bin/python -m bench.reliability_runs [--runs 3]

Each run is one pytest session of the scenario tests (real local Ray, bounded loopback load), whose report
conftest writes to test-results/reliability.json; the reports are kept in .bench/reliability-<n>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import spread

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
REPORT = ROOT / "test-results" / "reliability.json"
SCENARIO_TESTS = ["tests/local/test_reliability.py", "tests/local/test_failure_recovery.py",
                  "tests/node_agent/test_gcs_fault_tolerance.py", "tests/local/test_own_app_up.py"]


def run_once(n: int) -> dict:
    REPORT.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={ROOT / 'test-results' / f'reliability-run-{n}'}", *SCENARIO_TESTS],
                          cwd=ROOT, capture_output=True, text=True)
    print(f"run {n}: pytest exit {proc.returncode}: {proc.stdout.strip().splitlines()[-1]}", flush=True)
    kept = WORK / f"reliability-{n}.json"
    shutil.copy(REPORT, kept)
    return json.loads(kept.read_text())


def summarise(runs: list[dict]) -> dict[str, dict[str, str]]:
    """Scenario -> figure -> 'median (min-max)' over the runs that reported it."""
    out: dict[str, dict[str, str]] = {}
    for scenario in runs[0]:
        figures = {}
        for key, value in runs[0][scenario].items():
            values = [r[scenario][key] for r in runs if isinstance((r.get(scenario) or {}).get(key), (int, float))
                      and not isinstance(r[scenario][key], bool)]
            if len(values) == len(runs) and not isinstance(value, bool):
                figures[key] = spread(values)
        out[scenario] = figures
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    runs = [run_once(n) for n in range(1, a.runs + 1)]
    for scenario, figures in summarise(runs).items():
        print(f"{scenario}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
