"""Load the multi-app Serve config, apply stack overrides, validate with Ray's own schema.

`build_serve_config` is the one entry point: it returns a plain dict that is a valid
`ray.serve.schema.ServeDeploySchema`, whose apps all import from `serve_apps/`, or raises
ConfigError naming the offending field. Programs call it before declaring any resource.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from components.config import ServeSettings
from components.errors import ConfigError, format_pydantic_errors

PROJECT_ROOT = Path(__file__).resolve().parent.parent
APPS_PACKAGE = "serve_apps"
# runtime_env keys that fetch code or packages at deploy time; the image bundles everything instead.
DOWNLOADING_RUNTIME_ENV_KEYS = {"working_dir", "py_modules", "pip", "conda", "uv", "container", "image_uri", "py_executable"}


def read_config_file(path: str | Path, root: Path = PROJECT_ROOT) -> dict:
    """Read the YAML Serve config (relative paths are relative to the project root)."""
    full = Path(path) if Path(path).is_absolute() else root / path
    try:
        data = yaml.safe_load(full.read_text())
    except FileNotFoundError:
        raise ConfigError(f"rayserve:serve.config_path: {full} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"rayserve:serve.config_path: {full} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"rayserve:serve.config_path: {full} must hold a mapping")
    return data


def merge_deployment(base: dict, override: dict) -> None:
    """Apply an override; choosing autoscaling_config (or a fixed num_replicas) drops the other."""
    if "autoscaling_config" in override and "num_replicas" not in override:
        base.pop("num_replicas", None)
    if isinstance(override.get("num_replicas"), int):
        base.pop("autoscaling_config", None)
    base.update(override)


def select_and_override(config: dict, settings: ServeSettings) -> dict:
    """Keep the stack's applications and apply its per-deployment overrides."""
    config = copy.deepcopy(config)
    apps = config.get("applications") or []
    by_name = {a.get("name"): a for a in apps if isinstance(a, dict)}
    if settings.applications is not None:
        unknown = [n for n in settings.applications if n not in by_name]
        if unknown:
            raise ConfigError(f"rayserve:serve.applications: unknown application(s) {unknown}; config has {sorted(by_name)}")
        config["applications"] = apps = [by_name[n] for n in settings.applications]
        by_name = {a["name"]: a for a in apps}
    for app_name, deployments in settings.overrides.items():
        app = by_name.get(app_name)
        if app is None:
            raise ConfigError(f"rayserve:serve.overrides.{app_name}: no application named {app_name!r} (have {sorted(by_name)})")
        existing = {d.get("name"): d for d in app.setdefault("deployments", [])}
        for dep_name, override in deployments.items():
            if dep_name not in existing:
                raise ConfigError(
                    f"rayserve:serve.overrides.{app_name}.{dep_name}: application {app_name!r} has no deployment "
                    f"{dep_name!r} (have {sorted(existing)})"
                )
            merge_deployment(existing[dep_name], override.model_dump(exclude_none=True))
    if settings.http_port is not None:
        config.setdefault("http_options", {})["port"] = settings.http_port
    return config


def validate_schema(config: dict) -> dict:
    """Validate with ray.serve.schema.ServeDeploySchema (and each autoscaling_config with Ray's
    AutoscalingConfig, which the schema only checks at deploy time); return the JSON-able dict."""
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        raise ConfigError("invalid Serve config:\n" + format_pydantic_errors("serve config: ", exc)) from None
    validated = schema.model_dump(mode="json", exclude_unset=True)
    for i, app in enumerate(validated["applications"]):
        for j, dep in enumerate(app.get("deployments") or []):
            if isinstance(dep.get("autoscaling_config"), dict):
                try:
                    AutoscalingConfig.model_validate(dep["autoscaling_config"])
                except ValidationError as exc:
                    where = f"serve config: applications.{i}.deployments.{j}({dep['name']}).autoscaling_config"
                    raise ConfigError("invalid Serve config:\n" + format_pydantic_errors(where, exc)) from None
    return validated


def check_bundled_imports(config: dict, root: Path = PROJECT_ROOT) -> None:
    """Every app must import from serve_apps/ (bundled in the image), with no downloading runtime_env."""
    for i, app in enumerate(config["applications"]):
        where = f"serve config: applications.{i}({app['name']})"
        path = app["import_path"]
        module_name, sep, attr = path.partition(":")
        if not sep:
            module_name, _, attr = path.rpartition(".")
        if module_name.split(".")[0] != APPS_PACKAGE:
            raise ConfigError(f"{where}.import_path: {path!r} must import from the bundled {APPS_PACKAGE}/ package")
        bad_env = DOWNLOADING_RUNTIME_ENV_KEYS & set(app.get("runtime_env") or {})
        if bad_env:
            raise ConfigError(f"{where}.runtime_env: {sorted(bad_env)} download at deploy time; bake them into the image")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{where}.import_path: cannot import {module_name!r}: {exc}") from None
        if not Path(module.__file__).resolve().is_relative_to(root / APPS_PACKAGE):
            raise ConfigError(f"{where}.import_path: {module_name!r} resolves outside {root / APPS_PACKAGE}")
        if not hasattr(module, attr):
            raise ConfigError(f"{where}.import_path: {module_name!r} has no attribute {attr!r}")


def build_serve_config(settings: ServeSettings, root: Path = PROJECT_ROOT) -> dict:
    """Stack settings -> validated Serve config dict (raises ConfigError)."""
    config = select_and_override(read_config_file(settings.config_path, root), settings)
    validated = validate_schema(config)
    check_bundled_imports(validated, root)
    return validated


def serve_port(config: dict) -> int:
    """The HTTP port Serve's proxies listen on."""
    return int((config.get("http_options") or {}).get("port", 8000))


def to_yaml(config: dict) -> str:
    """The config as YAML (KubeRay's serveConfigV2 format)."""
    return yaml.safe_dump(config, sort_keys=False)
