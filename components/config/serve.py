"""Load the multi-app Serve config, apply stack overrides, and validate it strictly.

`build_serve_config` is the one entry point: it returns a plain dict that is a valid
`ray.serve.schema.ServeDeploySchema` whose every import path resolves inside the apps' code (the stack's
`serve.app_dir`, or the bundled `rayserve_pulumi.serve_apps`), or raises ConfigError with one line per
error. Ray's own schema ignores unknown keys almost everywhere and coerces types, so a strict pass runs
first: unknown keys at every level, finite numbers only, booleans and strings are not numbers. Everything
that imports Ray or the apps' code runs in a child interpreter (`config.code_check`).
"""
from __future__ import annotations

import copy
import enum
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ValidationError

from rayserve_pulumi.config import code_check
from rayserve_pulumi.config.app_code import APPS_PACKAGE, AppCode, bundled_dir
from rayserve_pulumi.config.errors import ConfigError, format_pydantic_errors, path_of
from rayserve_pulumi.config.stack import ServeSettings
from rayserve_pulumi.config.yamlio import load_yaml_file
from rayserve_pulumi.constants import SERVE_PORT

__all__ = ["APPS_PACKAGE", "ValidatedServeConfig", "apps_dir", "build_serve_config", "check_serve_config",
           "resolve_serve_config"]

BUNDLED_CONFIG = "serve_config.yaml"
WHERE = "serve config "  # prefix of every Serve config error: `serve config applications[fruit]...: ...`
CONFIG_KEY = "rayserve:serve.config_path"
ROUTE_PREFIX = re.compile(r"^/([A-Za-z0-9._~!$&'()*+,;=:@%-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*)?$")
apps_dir = bundled_dir


class ValidatedServeConfig(dict):
    """A Serve config this package validated (`build_serve_config`, `validate_stack`): a plain dict of Ray's
    ServeDeploySchema, marked so components trust it instead of checking it again; a plain dict from a
    caller's own program is checked where it enters."""


yaml.SafeDumper.add_representer(ValidatedServeConfig, yaml.SafeDumper.represent_dict)  # YAML as any mapping


def bundled_text(name: str) -> str:
    """A data file shipped with the bundled apps (serve_config.yaml, Dockerfile, requirements.txt)."""
    return (bundled_dir() / name).read_text()


def read_config_file(path: Optional[str | Path] = None, base_dir: Optional[Path] = None) -> dict:
    """Read a YAML Serve config: `path` (relative to `base_dir`, default the working directory), or the bundled one."""
    full = apps_dir() / BUNDLED_CONFIG if path is None else Path(base_dir or Path.cwd()) / path
    data = load_yaml_file(full, CONFIG_KEY)
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_KEY}: {full} must hold a mapping (a Serve config with `applications:`)")
    return data


# ---- selecting applications and applying overrides ---------------------------------------------

def merge_deployment(base: dict, override: dict) -> None:
    """Apply an override; choosing autoscaling_config (or a fixed num_replicas) drops the other."""
    if "autoscaling_config" in override and "num_replicas" not in override:
        base.pop("num_replicas", None)
    if isinstance(override.get("num_replicas"), int):
        base.pop("autoscaling_config", None)
    base.update(override)


def select_and_override(config: dict, settings: ServeSettings) -> tuple[dict, dict[str, list[str]]]:
    """Keep the stack's applications and apply its per-deployment overrides (all errors at once). Returns the
    config and, per application, the deployments an override added (the code check names their override)."""
    config = copy.deepcopy(config)
    apps = config.get("applications") if isinstance(config.get("applications"), list) else []
    by_name = {a.get("name"): a for a in apps if isinstance(a, dict)}
    errors: list[str] = []
    added: dict[str, list[str]] = {}
    if settings.applications is not None:
        unknown = [n for n in settings.applications if n not in by_name]
        if unknown:
            raise ConfigError(f"rayserve:serve.applications: unknown application(s) {unknown}; "
                              f"the Serve config has {sorted(by_name)}")
        config["applications"] = apps = [by_name[n] for n in settings.applications]
        by_name = {a["name"]: a for a in apps}
    for app_name, deployments in settings.overrides.items():
        app = by_name.get(app_name)
        if app is None:
            errors.append(f"rayserve:serve.overrides.{app_name}: no application named {app_name!r} "
                          f"(have {sorted(by_name)})")
            continue
        existing = {d.get("name"): d for d in app.setdefault("deployments", []) if isinstance(d, dict)}
        for dep_name, override in deployments.items():
            if dep_name not in existing:  # the code check tells whether the code has it
                existing[dep_name] = {"name": dep_name}
                app["deployments"].append(existing[dep_name])
                added.setdefault(app_name, []).append(dep_name)
            merge_deployment(existing[dep_name], override.model_dump(exclude_none=True))
    if errors:
        raise ConfigError(*errors)
    if settings.http_port is not None:
        config.setdefault("http_options", {})["port"] = settings.http_port
    return config, added


# ---- the strict pass (before Ray's lenient schema) ---------------------------------------------

def _unwrap(annotation) -> list:
    """The member types of an annotation (Optional/Union/Annotated flattened)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _unwrap(a)]
    return [annotation]


def _model_of(annotation) -> tuple[Optional[type], bool]:
    """(pydantic model, is a list of it) that a field holds, if any."""
    for member in _unwrap(annotation):
        origin = typing.get_origin(member)
        if origin in (list, typing.List):
            inner, _ = _model_of(typing.get_args(member)[0])
            if inner:
                return inner, True
        elif isinstance(member, type) and issubclass(member, BaseModel):
            return member, False
    return None, False


def _special_models() -> dict:
    from ray.serve.config import AutoscalingPolicy
    from ray.serve.schema import ServeApplicationSchema

    return {(ServeApplicationSchema, "autoscaling_policy"): (AutoscalingPolicy, False)}


def _scalar_error(value: Any, annotation) -> Optional[str]:
    kinds = set()
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, enum.Enum):
            kinds.add(str)
        elif member in (int, float, str, bool):
            kinds.add(member)
        elif typing.get_origin(member) is typing.Literal:
            kinds.update(type(a) for a in typing.get_args(member))
    numeric = kinds & {int, float}
    if numeric and isinstance(value, bool) and bool not in kinds:
        return f"must be a number, not a boolean (got {value!r})"
    if numeric and isinstance(value, str) and str not in kinds:
        return f"must be a number, not a string (got {value!r}); write it without quotes"
    if kinds == {int} and isinstance(value, float):
        return f"must be a whole number (got {value!r})"
    return None


def _nonfinite(value: Any, path: str, errors: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{WHERE}{path}: {value!r} is not a finite number")
    elif isinstance(value, dict):
        for k, v in value.items():
            _nonfinite(v, f"{path}.{k}" if path else str(k), errors)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _nonfinite(v, path + path_of([i], value), errors)


def nonfinite_errors(config: dict) -> list[str]:
    """Every NaN or infinity anywhere in the config (YAML's .nan, .inf), one line each."""
    errors: list[str] = []
    _nonfinite(config, "", errors)
    return errors


def _walk(value: dict, model: type, path: str, errors: list[str]) -> None:
    fields = model.model_fields
    names = set(fields) | {f.alias for f in fields.values() if f.alias}
    for key, item in value.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in names:
            errors.append(f"{WHERE}{here}: unknown key; {model.__name__} accepts {', '.join(sorted(names))}")
            continue
        annotation = fields[key].annotation if key in fields else next(
            f.annotation for f in fields.values() if f.alias == key)
        sub, is_list = _special_models().get((model, key)) or _model_of(annotation)
        if sub and is_list and isinstance(item, list):
            for i, element in enumerate(item):
                if isinstance(element, dict):
                    _walk(element, sub, here + path_of([i], item), errors)
        elif sub and isinstance(item, dict):
            _walk(item, sub, here, errors)
        elif (why := _scalar_error(item, annotation)) is not None:
            errors.append(f"{WHERE}{here}: {why}")


def strict_errors(config: dict) -> list[str]:
    """What Ray's schema would ignore or coerce: unknown keys, non-finite numbers, booleans or strings
    as numbers; and what Serve refuses only at deploy time: no applications, bad route prefixes."""
    from ray.serve.schema import ServeDeploySchema

    errors = nonfinite_errors(config)
    _walk(config, ServeDeploySchema, "", errors)
    apps = config.get("applications")
    if not isinstance(apps, list) or not apps:
        errors.append(f"{WHERE}applications: at least one application is required (an empty list deletes every "
                      "running application)")
        return errors
    for i, app in enumerate(apps):
        prefix = app.get("route_prefix") if isinstance(app, dict) else None
        if prefix is not None and (not isinstance(prefix, str) or not ROUTE_PREFIX.match(prefix)):
            errors.append(f"{WHERE}applications{path_of([i], apps)}.route_prefix: {prefix!r} must start with '/', "
                          "not end with '/' (unless it is just '/'), and hold only URL path characters (no '{', '}', "
                          "spaces or '//')")
    return errors


def _json_value_error(value: Any, path: str) -> Optional[str]:
    if value is None or isinstance(value, (str, bool, int, float)):
        return None  # a float's finiteness is nonfinite_errors'
    if isinstance(value, list):
        return next((e for i, v in enumerate(value) if (e := _json_value_error(v, f"{path}[{i}]"))), None)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}: key {k!r} is not a string; user_config is JSON, whose keys are strings (quote it)"
            if (e := _json_value_error(v, f"{path}.{k}")) is not None:
                return e
        return None
    return f"{path}: {value!r} ({type(value).__name__}) is not a JSON value; quote it to pass it as a string"


def user_config_errors(config: dict) -> list[str]:
    """Each deployment's user_config is null or a JSON object (string keys; strings, numbers, booleans, null,
    lists and objects): what `reconfigure` receives. With nonfinite_errors, the whole rule for user_config
    values (config.verdict applies just these two when only those values changed)."""
    errors = []
    apps = config.get("applications") if isinstance(config.get("applications"), list) else []
    for i, app in enumerate(apps):
        deployments = app.get("deployments") if isinstance(app, dict) and isinstance(app.get("deployments"), list) else []
        for j, dep in enumerate(deployments):
            if isinstance(dep, dict) and dep.get("user_config") is not None:
                where = f"{WHERE}applications{path_of([i], apps)}.deployments{path_of([j], deployments)}.user_config"
                if not isinstance(dep["user_config"], dict):
                    errors.append(f"{where}: must be a mapping (or null), not {type(dep['user_config']).__name__}")
                elif (why := _json_value_error(dep["user_config"], where)) is not None:
                    errors.append(why)
    return errors


# ---- Ray's schema, then what only the bundled code can tell -------------------------------------

def validate_schema(config: dict) -> dict:
    """Validate with ray.serve.schema.ServeDeploySchema (and each autoscaling_config with Ray's
    AutoscalingConfig, which the schema only checks at deploy time); return the JSON-able dict."""
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(*format_pydantic_errors(WHERE, exc, config)) from None
    except Exception as exc:  # a validator of Ray's that raised something else: still one line, no traceback
        raise ConfigError(f"{WHERE.strip()}: Ray's ServeDeploySchema refused it: {type(exc).__name__}: {exc}") from None
    validated = schema.model_dump(mode="json", exclude_unset=True)
    errors = []
    for app in validated["applications"]:
        for dep in app.get("deployments") or []:
            if isinstance(dep.get("autoscaling_config"), dict):
                try:
                    AutoscalingConfig.model_validate(dep["autoscaling_config"])
                except ValidationError as exc:
                    where = f"{WHERE}applications[{app['name']}].deployments[{dep['name']}].autoscaling_config."
                    errors += format_pydantic_errors(where, exc)
    if errors:
        raise ConfigError(*errors)
    return validated


def resolve_serve_config(settings: ServeSettings, base_dir: Optional[Path] = None) -> tuple[dict, dict]:
    """The Serve config the stack asks for (its file, its applications, its overrides), not yet validated, and
    the deployments its overrides added (select_and_override). `base_dir` anchors a relative `config_path`
    (the program passes its own directory); with `app_dir` set it defaults to the app_dir's serve_config.yaml."""
    path = settings.config_path
    if path is None and settings.app_dir is not None:
        path = Path(settings.app_dir) / BUNDLED_CONFIG
    return select_and_override(read_config_file(path, base_dir), settings)


def app_code(settings: ServeSettings, base_dir: Optional[Path] = None) -> AppCode:
    """The apps' code the stack names (ConfigError for a bad app_dir, requirements file or Dockerfile)."""
    return AppCode.locate(settings.app_dir, settings.requirements, base_dir)


def check_serve_config(config: dict, code: Optional[AppCode] = None, timeout_s: float = 60,
                       added: Optional[dict] = None) -> tuple[dict, dict]:
    """A resolved Serve config -> (the validated dict, application -> deployment -> facts of its code), checked
    against `code` (default: the bundled apps) in a child interpreter (raises ConfigError)."""
    errors = user_config_errors(config)  # what JSON cannot carry to the child is refused here, by name
    if not errors and (why := _json_value_error(config, WHERE.strip())) is not None:
        errors = [why]
    if errors:
        raise ConfigError(*errors)
    answer = code_check.run(config, code or AppCode.bundled_apps(), timeout_s, added)
    return ValidatedServeConfig(answer["config"]), answer["apps"]


def build_serve_config(settings: ServeSettings, base_dir: Optional[Path] = None) -> dict:
    """Stack settings -> validated Serve config dict (raises ConfigError)."""
    config, added = resolve_serve_config(settings, base_dir)
    return check_serve_config(config, app_code(settings, base_dir), settings.import_timeout_s, added)[0]


def deployment_resources(config: dict, apps: dict) -> list[tuple[str, float, float]]:
    """(where, num_cpus, num_gpus) of every deployment's replica (`apps`: the code check's facts): the config's
    ray_actor_options replace the code's as a whole (Serve's rule: an override that omits num_cpus asks for
    Serve's default of 1)."""
    out = []
    for app in config["applications"]:
        listed = {d["name"]: d for d in app.get("deployments") or []}
        for name, facts in (apps.get(app["name"]) or {}).items():
            configured = (listed.get(name) or {}).get("ray_actor_options")
            options = configured if configured is not None else facts["ray_actor_options"]
            out.append((f"{WHERE}applications[{app['name']}].deployments[{name}].ray_actor_options",
                        float(options.get("num_cpus", 1) or 0), float(options.get("num_gpus", 0) or 0)))
    return out


def serve_port(config: dict) -> int:
    """The HTTP port Serve's proxies listen on."""
    return int((config.get("http_options") or {}).get("port", SERVE_PORT))


def grpc_port(config: dict) -> Optional[int]:
    """The gRPC port, when gRPC servicers are configured (Serve starts no gRPC server otherwise)."""
    grpc = config.get("grpc_options") or {}
    return int(grpc.get("port", 9000)) if grpc.get("grpc_servicer_functions") else None


def to_yaml(config: dict) -> str:
    """The config as YAML (KubeRay's serveConfigV2 format)."""
    return yaml.safe_dump(config, sort_keys=False)


def app_urls(base_url: str, config: dict) -> dict[str, str]:
    """Application name -> URL including its route prefix."""
    base = base_url.rstrip("/")
    return {app["name"]: base + (app.get("route_prefix") or "/") for app in config["applications"]}
