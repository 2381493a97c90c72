"""The one validation entry point: raw `rayserve:` values -> (StackConfig, Serve config), or ConfigError
with every error of the stack, one line each."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.checks import stack_errors
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.serve import check_serve_config, resolve_serve_config
from rayserve_pulumi.config.sources import parse_stack_config
from rayserve_pulumi.config.stack import StackConfig


def validate_resolved(cfg: StackConfig, resolved: dict) -> dict:
    """A parsed stack and its resolved Serve config -> the validated Serve config (every error at once)."""
    serve_config = check_serve_config(resolved)
    errors = stack_errors(cfg, serve_config)
    if errors:
        raise ConfigError(*errors)
    return serve_config


def validate_stack(values: dict[str, Any], program_dir: Optional[Path] = None) -> tuple[StackConfig, dict]:
    """Validate a stack's raw values and its Serve config; nothing is declared before this returns."""
    cfg = parse_stack_config(values)
    return cfg, validate_resolved(cfg, resolve_serve_config(cfg.serve, program_dir))
