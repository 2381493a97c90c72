"""Where raw stack config comes from: the running Pulumi stack, or a stack file (CLI, tests)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rayserve_pulumi.config.errors import ConfigError, format_pydantic_errors
from rayserve_pulumi.config.stack import NAMESPACE, StackConfig


def _raw_namespace_values(namespace: str) -> dict[str, Any]:
    """All `namespace:*` config values of the running stack, JSON objects decoded."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values: dict[str, Any] = {}
    for full_key, raw in merged.items():
        ns, _, key = full_key.partition(":")
        if ns != namespace or not key:
            continue
        try:
            values[key] = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            values[key] = raw
    return values


def read_stack_file(path) -> dict[str, Any]:
    """The `rayserve:` values of a stack file (e.g. stacks/Pulumi.local.yaml), namespace stripped."""
    raw = yaml.safe_load(Path(path).read_text()).get("config") or {}
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")}


def parse_stack_config(values: dict[str, Any]) -> StackConfig:
    """Validate raw config values; raise ConfigError naming each bad `rayserve:` key."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("invalid stack config:\n" + format_pydantic_errors(f"{NAMESPACE}:", exc)) from None


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read and validate the current stack's `rayserve:` config."""
    return parse_stack_config(_raw_namespace_values(namespace))
