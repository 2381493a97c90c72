"""`python -m components.local_cli up|destroy`: the local stack without the Pulumi CLI.

Runs the same LocalServeProvider that `pulumi up --stack local` runs, with the same validated stack
config (stacks/Pulumi.local.yaml), and keeps its outputs in .pulumi-state/local-direct.json.
"""
from __future__ import annotations

import json
import sys

from components.config import parse_stack_config, read_stack_file
from components.local_platform import LocalServeProvider, provider_inputs
from components.serve_config import PROJECT_ROOT, build_serve_config

STATE = PROJECT_ROOT / ".pulumi-state" / "local-direct.json"


def main(action: str) -> dict:
    provider = LocalServeProvider()
    if action == "destroy":
        if STATE.exists():
            state = json.loads(STATE.read_text())
            provider.delete(state["id"], state["outs"])
            STATE.unlink()
        return {}
    cfg = parse_stack_config(read_stack_file(PROJECT_ROOT / "stacks" / "Pulumi.local.yaml"))
    props = provider_inputs(cfg.local, build_serve_config(cfg.serve))
    if STATE.exists():
        state = json.loads(STATE.read_text())
        outs = provider.update(state["id"], state["outs"], props).outs
        rid = state["id"]
    else:
        result = provider.create(props)
        rid, outs = result.id, result.outs
    STATE.parent.mkdir(exist_ok=True)
    STATE.write_text(json.dumps({"id": rid, "outs": outs}))
    return {"app_urls": outs["app_urls"], "dashboard_url": outs["dashboard_url"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "up"), indent=2))
