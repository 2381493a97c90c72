"""Where raw stack config comes from: the running Pulumi stack, or a stack file (CLI, tests)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rayserve_pulumi.config.errors import ConfigError, format_pydantic_errors
from rayserve_pulumi.config.stack import NAMESPACE, StackConfig
from rayserve_pulumi.config.yamlio import load_yaml_file

__all__ = ["raw_stack_values", "read_stack_file", "parse_stack_config", "load_stack_config"]


def raw_stack_values(namespace: str = NAMESPACE) -> dict[str, Any]:
    """All `namespace:*` config values of the running stack, JSON objects decoded. Through the SDK's public
    config API: the keys the engine hands the program (`pulumi.runtime.get_config_env`, so a misspelt key is
    seen and refused) and every key the stack config knows, each read with `pulumi.runtime.get_config`."""
    import pulumi.runtime

    keys = {full.partition(":")[2] for full in pulumi.runtime.get_config_env() if full.startswith(f"{namespace}:")}
    values: dict[str, Any] = {}
    for key in sorted((keys | set(StackConfig.model_fields)) - {""}):
        raw = pulumi.runtime.get_config(f"{namespace}:{key}")
        if raw is None:
            continue
        try:
            values[key] = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            values[key] = raw
    return values


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


def parse_stack_config(values: dict[str, Any]) -> StackConfig:
    """Validate raw config values; raise ConfigError naming each bad `rayserve:` key."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(*format_pydantic_errors(f"{NAMESPACE}:", exc, values)) from None


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read and validate the current stack's `rayserve:` config."""
    return parse_stack_config(raw_stack_values(namespace))
