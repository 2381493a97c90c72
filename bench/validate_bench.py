"""How long `rayserve validate` takes per stack: the whole command (interpreter start, imports, reading
the stack file, every check), as a user runs it. Prints figures; asserts nothing.

  python -m bench.validate_bench [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_validate(stack_file: Path, repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rayserve_pulumi.cli", "validate", str(stack_file)], check=True,
                       capture_output=True, cwd=ROOT)
        runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    print(f"{'stack':<8} {'median s':>9} {'max s':>7}  (rayserve validate, {a.repeat} runs each)")
    for stack_file in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        runs = time_validate(stack_file, a.repeat)
        print(f"{stack_file.name.split('.')[1]:<8} {statistics.median(runs):>9.2f} {max(runs):>7.2f}")


if __name__ == "__main__":
    main()
