"""Where raw stack config comes from: the running Pulumi stack, or a stack file (CLI, tests)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rayserve_pulumi.config.errors import ConfigError, format_pydantic_errors
from rayserve_pulumi.config.stack import NAMESPACE, StackConfig
from rayserve_pulumi.config.yamlio import load_yaml_file

__all__ = ["raw_stack_values", "pulumi_cli_values", "stack_file_of", "read_stack_file", "parse_stack_config",
           "load_stack_config"]


def raw_stack_values(namespace: str = NAMESPACE) -> dict[str, Any]:
    """All `namespace:*` config values of the running stack, JSON objects decoded. Through the SDK's public
    config API: the keys the engine hands the program (`pulumi.runtime.get_config_env`, so a misspelt key is
    seen and refused) and every key the stack config knows, each read with `pulumi.runtime.get_config`."""
    import pulumi.runtime

    keys = {full.partition(":")[2] for full in pulumi.runtime.get_config_env() if full.startswith(f"{namespace}:")}
    values: dict[str, Any] = {}
    for key in sorted((keys | set(StackConfig.model_fields)) - {""}):
        raw = pulumi.runtime.get_config(f"{namespace}:{key}")
        if raw is not None:
            values[key] = _decoded(raw)
    return values


def _decoded(raw: Any) -> Any:
    """A config value as the engine hands it to a program: structured values arrive as JSON text."""
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return raw


def pulumi_cli_values(stack: str, program_dir: Path, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The `namespace:*` values of a stack as the Pulumi CLI resolves them (`pulumi config --json`: the stack
    file, its ESC environments and secrets, decrypted in memory only)."""
    import subprocess

    try:
        proc = subprocess.run(["pulumi", "config", "--json", "--show-secrets", "--stack", stack,
                               "--cwd", str(program_dir)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"`pulumi config --json` did not run: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"`pulumi config --json` exited {proc.returncode}: {last}")
    try:
        entries = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"`pulumi config --json` printed no JSON object: {exc}") from None
    if not isinstance(entries, dict):
        raise ConfigError("`pulumi config --json` printed no JSON object")
    return {key.split(":", 1)[1]: _decoded(entry["objectValue"]) if "objectValue" in entry
            else _decoded(entry.get("value"))
            for key, entry in entries.items() if key.startswith(f"{namespace}:") and isinstance(entry, dict)}


def stack_file_of(stack: str, program_dir: Path) -> Path:
    """Where the Pulumi CLI keeps a stack's config: `Pulumi.<stack>.yaml` in the project's `stackConfigDir`."""
    project = load_yaml_file(program_dir / "Pulumi.yaml", str(program_dir / "Pulumi.yaml")) \
        if (program_dir / "Pulumi.yaml").is_file() else {}
    folder = project.get("stackConfigDir", ".") if isinstance(project, dict) else "."
    return program_dir / str(folder) / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"


def read_stack_file(path) -> dict[str, Any]:
    """The `rayserve:` values of a stack file (e.g. stacks/Pulumi.local.yaml), namespace stripped."""
    where = str(path)
    doc = load_yaml_file(Path(path), where)
    raw = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a stack file holds a `config:` mapping of `rayserve:<key>: <value>`")
    values = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: config key {key!r} is not a string")
        if key.startswith(f"{NAMESPACE}:"):
            values[key.split(":", 1)[1]] = value
    return values


def parse_stack_config(values: dict[str, Any], supplied: frozenset = frozenset()) -> StackConfig:
    """Validate raw config values; raise ConfigError naming each bad `rayserve:` key. `supplied`: settings that
    arrive as component args instead ("image", "allowed_cidrs"), so the stack need not hold them."""
    try:
        return StackConfig.model_validate(values, context={"supplied": supplied})
    except ValidationError as exc:
        raise ConfigError(*format_pydantic_errors(f"{NAMESPACE}:", exc, values)) from None


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read and validate the current stack's `rayserve:` config."""
    return parse_stack_config(raw_stack_values(namespace))
