"""`python -m rayserve_pulumi.local.cli up|destroy --stack-file F --state S --program-dir D`: the local stack without a Pulumi CLI.

Runs the same LocalServeProvider that `pulumi up --stack local` runs, with the same validated stack
config, and keeps its outputs in the state file (scripts/up.sh passes stacks/Pulumi.local.yaml and
.pulumi-state/local-direct.json).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rayserve_pulumi.config.serve import build_serve_config
from rayserve_pulumi.config.sources import parse_stack_config, read_stack_file
from rayserve_pulumi.local.provider import LocalServeProvider, provider_inputs


def main(action: str, stack_file: Path, state: Path, program_dir: Path) -> dict:
    provider = LocalServeProvider()
    if action == "destroy":
        if state.exists():
            saved = json.loads(state.read_text())
            provider.delete(saved["id"], saved["outs"])
            state.unlink()
        return {}
    cfg = parse_stack_config(read_stack_file(stack_file))
    props = provider_inputs(cfg.local, build_serve_config(cfg.serve, base_dir=program_dir), cfg.serve.proxy,
                            str(program_dir.resolve() / cfg.local.models_dir))
    if state.exists():
        saved = json.loads(state.read_text())
        outs = provider.update(saved["id"], saved["outs"], props).outs
        rid = saved["id"]
    else:
        result = provider.create(props)
        rid, outs = result.id, result.outs
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"id": rid, "outs": outs}))
    return {"app_urls": outs["app_urls"], "dashboard": outs["dashboard_url"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "destroy"])
    parser.add_argument("--stack-file", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--program-dir", type=Path, required=True, help="anchors a relative serve.config_path")
    a = parser.parse_args()
    print(json.dumps(main(a.action, a.stack_file, a.state, a.program_dir), indent=2))
