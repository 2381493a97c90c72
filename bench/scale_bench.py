"""How `rayserve validate` and `rayserve render` grow with the size of what a stack declares: a Serve
config of 1, 10 and 50 applications (each the bundled fruit app's four deployments, all overridden:
the bundled code has no app with more deployments, and every import path must resolve into it), and an
EKS stack with 1 and 10 worker groups. Whole commands, as a user runs them; files in .bench/ (ignored).
Prints figures; asserts nothing.

  python -m bench.scale_bench [--repeat 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "scale"


def serve_config(apps: int) -> dict:
    bundled = yaml.safe_load((ROOT / "serve_apps" / "serve_config.yaml").read_text())
    fruit = next(a for a in bundled["applications"] if a["name"] == "fruit")
    out = copy.deepcopy({k: v for k, v in bundled.items() if k != "applications"})
    out["applications"] = [{**copy.deepcopy(fruit), "name": f"fruit{i}", "route_prefix": f"/fruit{i}"}
                           for i in range(apps)]
    return out


def stack_file(name: str, values: dict) -> Path:
    path = WORK / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in values.items()}}))
    return path


def timed(command: str, path: Path, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rayserve_pulumi.cli", command, str(path), "--program-dir",
                               str(WORK)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"rayserve {command} {path.name} failed: {proc.stderr.strip()[:500]}")
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), max(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    a = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    local = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"]
    local = {k.split(":", 1)[1]: v for k, v in local.items()}
    prod = {k.split(":", 1)[1]: v for k, v in yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"].items()
            if k.startswith("rayserve:")}
    cases = []
    for apps in (1, 10, 50):
        config = WORK / f"serve-{apps}.yaml"
        config.write_text(yaml.safe_dump(serve_config(apps)))
        cases.append((f"{apps} apps x 4 deployments (local)",
                      stack_file(f"apps{apps}", {**local, "serve": {"config_path": str(config)}})))
    for groups in (2, 10):  # prod's GPU group (its text app asks for GPUs) and CPU groups up to `groups`
        cpu, gpu = prod["ray_service"]["worker_groups"][:2]
        values = copy.deepcopy(prod)
        values["ray_service"]["worker_groups"] = [gpu, *({**cpu, "name": f"cpu{i}"} for i in range(groups - 1))]
        cases.append((f"{groups} worker groups (prod, EKS)", stack_file(f"groups{groups}", values)))
    print(f"{'case':<36} {'validate s':>11} {'render s':>9}  (median of {a.repeat}; whole commands)")
    for name, path in cases:
        validate, _ = timed("validate", path, a.repeat)
        render, _ = timed("render", path, a.repeat)
        print(f"{name:<36} {validate:>11.2f} {render:>9.2f}")


if __name__ == "__main__":
    main()
