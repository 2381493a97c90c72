"""Reusing a stack's validation verdict when only `user_config` values changed.

A `user_config` change is the edit a running stack takes in place (Serve calls `reconfigure` on the live
replicas), and validating it should not cost the second that importing Ray takes. The verdict of a full
`validate_stack` is recorded with a fingerprint of everything that could change it: the stack's values and
the resolved Serve config with every `user_config` value masked, the interpreter, the installed
distributions, the bytes of this package (its validators and the bundled apps) and of the apps' code
(`serve.app_dir`). When the fingerprint matches, the earlier verdict holds for everything but the
`user_config` values, and those get the checks the full validation gives them (`user_config_errors`,
`nonfinite_errors`, the stack checks that read values, `value_errors`, and for a deployment whose
`reconfigure` annotates a pydantic model (the full validation records which, as `module:Name`) that model,
in a child interpreter that imports the model's module alone (`code_check.check_models`). Anything else
differs: the full validation runs. Ray's schema still sees every
applied config: the dashboard validates a deploy before changing anything.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.checks import value_errors
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.app_code import AppCode, tree_digest
from rayserve_pulumi.config.code_check import check_models
from rayserve_pulumi.config.serve import (
    WHERE, ValidatedServeConfig, app_code, apps_dir, nonfinite_errors, resolve_serve_config, user_config_errors,
)
from rayserve_pulumi.config.sources import parse_stack_config
from rayserve_pulumi.config.stack import StackConfig
from rayserve_pulumi.config.validate import validate_resolved

__all__ = [
    "MASK", "PACKAGE_ROOT", "masked_config", "masked_values", "code_digest", "environment", "fingerprint",
    "typed_changes", "validate",
]

MASK = "<user_config>"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # rayserve_pulumi: its validators


def _deployments(config: dict):
    for app in config.get("applications") or []:
        for dep in (app.get("deployments") or []) if isinstance(app, dict) else []:
            if isinstance(dep, dict):
                yield app.get("name"), dep


def masked_config(config: dict) -> dict:
    """The Serve config with every deployment's user_config value replaced by a mask (the key stays)."""
    out = copy.deepcopy(config)
    for _, dep in _deployments(out):
        if "user_config" in dep:
            dep["user_config"] = MASK
    return out


def masked_values(values: dict) -> dict:
    """Raw stack values with every `serve.overrides.<app>.<deployment>.user_config` value masked."""
    out = copy.deepcopy(values)
    for deployments in ((out.get("serve") or {}).get("overrides") or {}).values():
        for override in deployments.values():
            if "user_config" in override:
                override["user_config"] = MASK
    return out


def code_digest(root: Path) -> str:
    """tree_digest of every .py and .yaml file under `root`."""
    return tree_digest(root, sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml")
                                    and "__pycache__" not in p.parts))


@lru_cache(maxsize=None)
def environment() -> tuple[str, tuple[str, ...], str]:
    """The interpreter, every distribution installed in its site-packages (`name-version.dist-info`), and the
    code of this package and of the bundled apps (a separate folder in a source checkout). Not sys.path:
    it differs between callers (pytest's rootdir, the folders Ray adds on import)."""
    sites = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    dists = sorted({name for site in sites if os.path.isdir(site)
                    for name in os.listdir(site) if name.endswith((".dist-info", ".egg-info"))})
    return sys.version, tuple(dists), ",".join(code_digest(root) for root in (PACKAGE_ROOT, apps_dir().resolve()))


def fingerprint(values: dict, resolved: dict, code: AppCode) -> str:
    """What a verdict depends on, user_config values aside."""
    doc = {"values": masked_values(values), "serve_config": masked_config(resolved), "environment": environment(),
           "code": None if code.bundled else code.digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()


def typed_changes(saved: dict, resolved: dict) -> list[dict]:
    """The user_configs that changed for deployments with a model: what `code_check.check_models` checks."""
    typed = saved.get("typed") or {}
    old = {(app, dep["name"]): dep.get("user_config") for app, dep in _deployments(saved["serve_config"])}
    return [{"where": f"{WHERE}applications[{app}].deployments[{dep['name']}].user_config",
             "model": typed[app][dep["name"]], "value": dep["user_config"]}
            for app, dep in _deployments(resolved)
            if dep.get("name") in (typed.get(app) or {}) and isinstance(dep.get("user_config"), dict)
            and dep["user_config"] != old.get((app, dep["name"]))]


def validate(values: dict[str, Any], program_dir: Optional[Path] = None,
             saved: Optional[dict] = None) -> tuple[StackConfig, dict, dict]:
    """`validate_stack`, reusing `saved` (a verdict this returned before) when only user_config values
    changed. Returns (stack config, validated Serve config, the verdict to record)."""
    cfg = parse_stack_config(values)
    code = app_code(cfg.serve, program_dir)
    resolved, added = resolve_serve_config(cfg.serve, program_dir)  # its errors are the full validation's first
    mark = fingerprint(values, resolved, code)
    if saved and saved.get("fingerprint") == mark:
        errors = nonfinite_errors(resolved) + user_config_errors(resolved)
        if errors:
            raise ConfigError(*errors)
        if changed := typed_changes(saved, resolved):
            check_models(changed, code, cfg.serve.import_timeout_s)
        news = {(app, dep["name"]): dep["user_config"] for app, dep in _deployments(resolved) if "user_config" in dep}
        serve_config = ValidatedServeConfig(copy.deepcopy(saved["serve_config"]))
        for app, dep in _deployments(serve_config):
            if (app, dep.get("name")) in news:
                dep["user_config"] = news[(app, dep["name"])]
        errors = value_errors(cfg, serve_config)
        if errors:
            raise ConfigError(*errors)
        typed = saved.get("typed") or {}
    else:
        serve_config, apps = validate_resolved(cfg, resolved, code, added)
        typed = {app: {dep: facts["model"] for dep, facts in deps.items() if facts["model"]} for app, deps in apps.items()}
    return cfg, serve_config, {"fingerprint": mark, "serve_config": serve_config, "typed": typed}
