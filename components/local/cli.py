"""The local stack without a Pulumi CLI (`rayserve up|refresh|destroy STACK_FILE`), run through the engine's
lifecycle for its one resource.

up: validate the stack (one line per error, exit 1, nothing touched), build the provider's inputs with
the function the program uses, `read` what is live (as `pulumi up --refresh` does: a failed deploy
or a Ray that is gone is noticed), then `diff` against the state: nothing, an update in place, or
delete-then-create, as the diff says (a head setting replaces Ray; a Serve-only change redeploys in
the same replica processes). refresh: `read` — a Ray that is gone leaves the state file; drift is
recorded so the next `up` redeploys. The state file records what was applied (id, inputs, outputs), the
validation verdict, which the next `up` reuses when only user_config values changed (config.verdict), and
which config is live: after a failed deploy that was rolled back, the previous one, with the failure.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from rayserve_pulumi.config.errors import ConfigError

__all__ = ["State", "outputs", "up", "refresh", "destroy", "ACTIONS", "run"]


class State:
    """One file: the applied resource (`id`, `outs`: its inputs and outputs) and the last validation verdict
    (config.verdict). The verdict outlives the resource: it is about the config, not the head, so the cold
    `up` after a `destroy` or a reboot reuses it when the config is the same."""

    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def load(self) -> Optional[dict]:
        """The applied resource, or None."""
        data = self._read()
        return {"id": data["id"], "outs": data["outs"]} if "id" in data else None

    def verdict(self) -> Optional[dict]:
        return self._read().get("verdict")

    def _write(self, data: dict) -> None:
        if not data:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path)

    def live(self) -> Optional[dict]:
        """Which config is live: its hash, and after a rolled-back deploy the one that failed and why."""
        return self._read().get("live")

    def save(self, rid: str, outs: dict, verdict: Optional[dict] = None, failed: Optional[dict] = None) -> None:
        """Record the resource (its config is the live one); `verdict` replaces the recorded one, if given;
        `failed`: the config that failed and was rolled back (`config_hash`, `cause`)."""
        verdict = verdict if verdict is not None else self.verdict()
        live = {"config_hash": outs.get("config_hash"), **({"rolled_back": failed} if failed else {})}
        self._write({"id": rid, "outs": outs, "live": live, **({"verdict": verdict} if verdict else {})})

    def clear(self) -> None:
        """Forget the resource; keep the verdict."""
        verdict = self.verdict()
        self._write({"verdict": verdict} if verdict else {})


def outputs(outs: dict) -> dict:
    return {"platform": "local", "app_urls": outs["app_urls"], "dashboard": outs["dashboard_url"],
            "prometheus": outs.get("prometheus_url")}


def up(stack_file: Path, state: State, program_dir: Path) -> dict:
    from rayserve_pulumi.config.sources import read_stack_file
    from rayserve_pulumi.config.verdict import validate
    from rayserve_pulumi.local.args import LocalPlatformArgs
    from rayserve_pulumi.local.lifecycle import LocalServe, RolledBack, plan_lines, report
    from rayserve_pulumi.node_agent.ray_ops import config_hash

    saved = state.load()
    # the last verdict is reused when only user_config values changed (config.verdict): no Ray import then
    cfg, serve_config, verdict = validate(read_stack_file(stack_file), program_dir, state.verdict())
    news = LocalPlatformArgs.from_stack(cfg, serve_config, program_dir).inputs()
    local = LocalServe()
    if saved is not None:  # refresh first, as `pulumi up --refresh` (scripts/up.sh) does
        live = local.read(saved["id"], saved["outs"])
        saved = {"id": live.id, "outs": live.outs} if live.id else None
        if saved is None:
            state.clear()
    if saved is None:
        report("local: creating")
        result = local.create(news)
        state.save(result.id, result.outs, verdict)
        return outputs(result.outs)
    changes, replaces = local.diff(saved["outs"], news)
    if not changes:
        report("local: no changes")
        state.save(saved["id"], saved["outs"], verdict)
        return outputs(saved["outs"])
    for line in plan_lines(saved["outs"], news):
        report(f"plan: {line}")
    if replaces:
        report(f"local: replacing the Ray head ({', '.join(replaces)} changed)")
        local.delete(saved["outs"])
        state.clear()
        result = local.create(news)
        state.save(result.id, result.outs, verdict)
        return outputs(result.outs)
    report("local: updating Serve in place")
    try:
        outs = local.update(news, saved["outs"])
    except RolledBack as exc:
        failed = {"config_hash": config_hash(json.loads(news["serve_config_json"])), "cause": str(exc)}
        state.save(saved["id"], saved["outs"], verdict, failed=failed)
        raise
    state.save(saved["id"], outs, verdict)
    return outputs(outs)


def refresh(state: State) -> dict:
    from rayserve_pulumi.local.lifecycle import LocalServe

    saved = state.load()
    if saved is None:
        return {}
    result = LocalServe().read(saved["id"], saved["outs"])
    if not result.id:
        state.clear()
        return {"gone": True}
    state.save(result.id, result.outs)
    return {**outputs(result.outs), "drifted": result.outs.get("config_hash") == "drifted"}


def destroy(state: State) -> dict:
    from rayserve_pulumi.local.lifecycle import LocalServe

    saved = state.load()
    if saved is not None:
        LocalServe().delete(saved["outs"])
        state.clear()
    return {}


ACTIONS = {"up": up, "refresh": lambda _stack_file, state, _program_dir: refresh(state),
           "destroy": lambda _stack_file, state, _program_dir: destroy(state)}


def run(action: str, stack_file: Path, state_file: Path, program_dir: Path) -> int:
    """`rayserve <action>` for a local stack: the outputs as JSON on stdout (exit 0), or one line on stderr
    (exit 1): a config error naming its key, or the cause of a failed deploy."""
    try:
        result = ACTIONS[action](stack_file, State(state_file), program_dir)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"{stack_file}: {line}", file=sys.stderr)
        return 1
    except Exception as exc:  # a deploy that failed: its cause in one line, not a traceback
        print(f"{stack_file}: {action} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
