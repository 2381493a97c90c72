"""The one validation entry point: raw `rayserve:` values -> (StackConfig, Serve config), or ConfigError
with every error of the stack, one line each."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.checks import stack_errors
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.serve import app_code, check_serve_config, resolve_serve_config
from rayserve_pulumi.config.sources import parse_stack_config
from rayserve_pulumi.config.stack import StackConfig

__all__ = ["validate_resolved", "validate_stack"]


def validate_resolved(cfg: StackConfig, resolved: dict, code: AppCode, added: Optional[dict] = None) -> tuple[dict, dict]:
    """A parsed stack and its resolved Serve config, checked against the apps' code -> (the validated Serve
    config, application -> deployment -> facts of the code); every error at once."""
    serve_config, apps = check_serve_config(resolved, code, cfg.serve.import_timeout_s, added)
    errors = stack_errors(cfg, serve_config, apps, code)
    if errors:
        raise ConfigError(*errors)
    return serve_config, apps


def validate_stack(values: dict[str, Any], program_dir: Optional[Path] = None,
                   supplied: frozenset = frozenset()) -> tuple[StackConfig, dict]:
    """Validate a stack's raw values, its apps' code and its Serve config; nothing is declared before this returns.
    `supplied`: settings that arrive as component args instead (config.sources.parse_stack_config)."""
    cfg = parse_stack_config(values, supplied)
    code = app_code(cfg.serve, program_dir)
    resolved, added = resolve_serve_config(cfg.serve, program_dir)
    return cfg, validate_resolved(cfg, resolved, code, added)[0]
