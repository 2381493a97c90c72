"""Load the multi-app Serve config, apply stack overrides, validate with Ray's own schema.

`build_serve_config` is the one entry point: it returns a plain dict that is a valid
`ray.serve.schema.ServeDeploySchema`, whose apps all import from the bundled
`rayserve_pulumi.serve_apps`, or raises ConfigError naming the offending field. Programs call it
before declaring any resource. The bundled config is package data, read with importlib.resources.
"""
from __future__ import annotations

import copy
import importlib
import importlib.resources
from pathlib import Path
from typing import Optional

import yaml
from pydantic import ValidationError

from rayserve_pulumi.config.errors import ConfigError, format_pydantic_errors
from rayserve_pulumi.config.stack import ServeSettings
from rayserve_pulumi.constants import SERVE_PORT

APPS_PACKAGE = "rayserve_pulumi.serve_apps"
BUNDLED_CONFIG = "serve_config.yaml"
# runtime_env keys that fetch code or packages at deploy time; the image bundles everything instead.
DOWNLOADING_RUNTIME_ENV_KEYS = {"working_dir", "py_modules", "pip", "conda", "uv", "container", "image_uri", "py_executable"}


def apps_dir() -> Path:
    """The installed directory of the bundled apps (a real directory: the package is never zipped)."""
    return Path(str(importlib.resources.files(APPS_PACKAGE)))


def bundled_text(name: str) -> str:
    """A data file shipped with the bundled apps (serve_config.yaml, Dockerfile, requirements.txt)."""
    return importlib.resources.files(APPS_PACKAGE).joinpath(name).read_text()


def read_config_file(path: Optional[str | Path] = None, base_dir: Optional[Path] = None) -> dict:
    """Read a YAML Serve config: `path` (relative to `base_dir`, default the working directory), or the bundled one."""
    full = apps_dir() / BUNDLED_CONFIG if path is None else Path(base_dir or Path.cwd()) / path
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


def check_bundled_imports(config: dict) -> None:
    """Every app must import from the bundled apps (baked into the image), with no downloading runtime_env."""
    for i, app in enumerate(config["applications"]):
        where = f"serve config: applications.{i}({app['name']})"
        path = app["import_path"]
        module_name, sep, attr = path.partition(":")
        if not sep:
            module_name, _, attr = path.rpartition(".")
        if not module_name.startswith(APPS_PACKAGE + "."):
            raise ConfigError(f"{where}.import_path: {path!r} must import from the bundled {APPS_PACKAGE} package")
        bad_env = DOWNLOADING_RUNTIME_ENV_KEYS & set(app.get("runtime_env") or {})
        if bad_env:
            raise ConfigError(f"{where}.runtime_env: {sorted(bad_env)} download at deploy time; bake them into the image")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{where}.import_path: cannot import {module_name!r}: {exc}") from None
        if not Path(module.__file__).resolve().is_relative_to(apps_dir().resolve()):
            raise ConfigError(f"{where}.import_path: {module_name!r} resolves outside {apps_dir()}")
        if not hasattr(module, attr):
            raise ConfigError(f"{where}.import_path: {module_name!r} has no attribute {attr!r}")


def build_serve_config(settings: ServeSettings, base_dir: Optional[Path] = None) -> dict:
    """Stack settings -> validated Serve config dict (raises ConfigError). `base_dir` anchors a relative
    `config_path` (the program passes its own directory)."""
    config = select_and_override(read_config_file(settings.config_path, base_dir), settings)
    validated = validate_schema(config)
    check_bundled_imports(validated)
    return validated


def serve_port(config: dict) -> int:
    """The HTTP port Serve's proxies listen on."""
    return int((config.get("http_options") or {}).get("port", SERVE_PORT))


def to_yaml(config: dict) -> str:
    """The config as YAML (KubeRay's serveConfigV2 format)."""
    return yaml.safe_dump(config, sort_keys=False)


def app_urls(base_url: str, config: dict) -> dict[str, str]:
    """Application name -> URL including its route prefix."""
    base = base_url.rstrip("/")
    return {app["name"]: base + (app.get("route_prefix") or "/") for app in config["applications"]}
