"""The Serve config checked against the apps' code, in a child interpreter.

The program never imports a team's code itself: `run` asks `python -m rayserve_pulumi.config.code_check`,
started with the code's folder first on its import path, one JSON request per line under a timeout, and reads
back one JSON answer per line. The child stays up for more requests about the same code (at the same digest),
so a process that validates many configs (a program validating then declaring, `render`, the tests) pays for
importing Ray and the apps once; it exits when this process closes its stdin, and is stopped at exit. The child
(`check`) runs the strict pass, Ray's own schema (some of whose validators import paths of the config), and
what only the code can tell: every import path anywhere resolves inside the code's folder, applications name
a Serve Application, the deployments the config names exist, and each `user_config` fits the pydantic model
its deployment's `reconfigure` annotates (`reconfigure(self, config: PriceConfig)`). It answers the validated
config and, per application, each deployment's ray_actor_options and user_config model (`module:Name`,
which `config.verdict` records: a later user_config-only change is checked by `check_models`, importing
only the models' modules).

The VM head runs the same check inside its container before every deploy (`config.serve_check`).
"""
from __future__ import annotations

import atexit
import copy
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import typing
from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.app_code import APPS_PACKAGE, AppCode
from rayserve_pulumi.config.errors import ConfigError, one_line, path_of

__all__ = [
    "MODULE", "WHERE", "APP_DIR_ENV", "DOWNLOADING_RUNTIME_ENV_KEYS", "run", "check_models", "import_failure",
    "Code", "user_config_model", "model_path", "typed_user_config_errors", "app_deployments", "code_errors",
    "check", "check_typed", "main",
]

MODULE = "rayserve_pulumi.config.code_check"
WHERE = "serve config "
APP_DIR_ENV = "RAYSERVE_APP_DIR"  # the image's code folder, for the check run inside it
# runtime_env keys that fetch code or packages at deploy time; the image bundles everything instead.
DOWNLOADING_RUNTIME_ENV_KEYS = {"working_dir", "py_modules", "pip", "conda", "uv", "container", "image_uri",
                                "py_executable"}


# ---- the parent's side ----------------------------------------------------------------------------

# (request, code folder, code digest) -> the child's answer: within one process the same config against the
# same code is answered once (a program validates, then declares; `render` and tests render one stack often)
_ANSWERS: dict[tuple[str, str, str], dict] = {}


def _child(request: dict, code: AppCode, timeout_s: float) -> dict:
    """One answer of `python -m rayserve_pulumi.config.code_check` for `request`, the code's folder first on its
    path; ConfigError with its errors, or a timeout's. An answer is kept for the same request and code."""
    request = {**request, "app_dir": None if code.bundled else str(code.root)}
    digest = code.digest()  # reads every file of the code: once per request
    key = (json.dumps(request, sort_keys=True), str(code.root), digest)
    answer = _ANSWERS.get(key)
    if answer is None:
        answer = _ANSWERS[key] = _ask(request, code, digest, timeout_s)
    if answer.get("errors"):
        raise ConfigError(*answer["errors"])
    return copy.deepcopy(answer)


class _Checker:
    """One child interpreter answering requests about one code folder at one digest, one at a time. Its
    stderr goes to a file (a pipe nobody reads would fill and block it); its answers come on their own line."""

    def __init__(self, code: AppCode, digest: str):
        self.folder, self.digest = str(code.root), digest
        self.stderr = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # nothing written into the team's folder
        self.proc = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env, cwd=str(code.root), start_new_session=True)

    def ask(self, request: dict, code: AppCode, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            return self._failed(code)
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                self.close()
                raise ConfigError(f"rayserve:serve.import_timeout_s: importing the apps' code from {code.root} took "
                                  f"longer than {timeout_s:g} s (a module that blocks at import?); raise the timeout "
                                  "or fix the module")
        line = self.proc.stdout.readline()  # the child writes each answer whole, in one line
        try:
            return json.loads(line)
        except ValueError:
            return self._failed(code)

    def _failed(self, code: AppCode) -> dict:
        self.close(keep_stderr=True)
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        self.stderr.close()
        last = (err.strip().splitlines() or [f"exit status {self.proc.returncode}"])[-1]
        raise ConfigError(f"{WHERE.strip()}: the code check of {code.root} failed: {last}")

    def close(self, keep_stderr: bool = False) -> None:
        """Stop the child's session (what it started, nothing else)."""
        if _CHECKERS.get(self.folder) is self:
            del _CHECKERS[self.folder]
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, None if keep_stderr else self.stderr):
            try:
                stream and stream.close()
            except OSError:
                pass


_CHECKERS: dict[str, _Checker] = {}  # code folder -> the child answering about it, least recently asked first
_KEPT = 2  # children kept at once (each holds Ray and the apps imported): the bundled apps and a team's
_LOCK = threading.Lock()


def _ask(request: dict, code: AppCode, digest: str, timeout_s: float) -> dict:
    with _LOCK:
        checker = _CHECKERS.pop(str(code.root), None)
        if checker is not None and checker.digest != digest:
            checker.close()  # the code changed: a fresh interpreter imports it again
            checker = None
        _CHECKERS[str(code.root)] = checker = checker or _Checker(code, digest)
        while len(_CHECKERS) > _KEPT:
            next(iter(_CHECKERS.values())).close()
        return checker.ask(request, code, timeout_s)


@atexit.register
def _close_checkers() -> None:
    for checker in list(_CHECKERS.values()):
        checker.close()


def run(config: dict, code: AppCode, timeout_s: float, added: Optional[dict[str, list[str]]] = None) -> dict:
    """Check `config` against `code` in a child interpreter; the answer `{"config": validated, "apps": {app:
    {deployment: {"ray_actor_options", "model"}}}}`, or ConfigError with every error. `added`: application ->
    deployments the stack's overrides added (an error about one names the override's key)."""
    return _child({"mode": "config", "config": config, "added": added or {}}, code, timeout_s)


def check_models(items: list[dict], code: AppCode, timeout_s: float) -> None:
    """Each `{"where", "model", "value"}` (a user_config and the `module:Name` of its model) against its model, in
    a child that imports the models' modules only (ConfigError with every error). A model in a module of its
    own, importing only pydantic, makes this a fraction of a second; in the app's module, Ray is imported too."""
    _child({"mode": "models", "items": items}, code, timeout_s)


# ---- the child's side -----------------------------------------------------------------------------

def _inside(path: Optional[str], root: Path) -> bool:
    """Whether a module's or frame's file lies in `root` (a frozen module's "<frozen os>" lies nowhere)."""
    return bool(path) and os.path.isabs(path) and Path(path).resolve().is_relative_to(root)


def _shown(path: str, root: Path) -> str:
    full = Path(path).resolve()
    return str(full.relative_to(root)) if full.is_relative_to(root) else str(full)


def import_failure(module_name: str, exc: BaseException, root: Path) -> str:
    """Why a module of the code cannot be imported, in one line: the file and line where possible, the
    missing package by name."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return (f"cannot import {module_name!r}: {_shown(exc.filename, root)} line {exc.lineno}: "
                f"SyntaxError: {exc.msg}")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, root)]
    at = f"{_shown(frames[-1].filename, root)} line {frames[-1].lineno}: " if frames else ""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if module_name == exc.name or module_name.startswith(exc.name + "."):
            return f"no module {module_name!r} in {root}"
        return (f"cannot import {module_name!r}: {at}no module named {exc.name!r}: the package {top!r} is not "
                f"installed here (add it to the apps' requirements file and install it)")
    return f"cannot import {module_name!r}: {at}{one_line(exc)}"


class Code:
    """Resolves import paths inside one code folder (the team's app_dir, or the bundled apps)."""

    def __init__(self, app_dir: Optional[str]):
        self.app_dir = Path(app_dir).resolve() if app_dir else None
        self.root = self.app_dir or AppCode.bundled_apps().root
        if self.app_dir is not None and str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
        self.cache: dict[str, tuple[Any, str]] = {}

    def resolve(self, path: Any) -> tuple[Any, str]:
        """Import `module:attr` (or `module.attr`): (object, '') or (None, why not)."""
        if not isinstance(path, str):
            return None, f"must be an import path string, not {type(path).__name__}"
        if path not in self.cache:
            self.cache[path] = self._resolve(path)
        return self.cache[path]

    def _resolve(self, path: str) -> tuple[Any, str]:
        import importlib

        module_name, sep, attr = path.partition(":")
        if not sep:
            module_name, _, attr = path.rpartition(".")
        if not module_name or not attr:
            return None, f"{path!r} is not an import path (module:attribute)"
        if self.app_dir is None and not module_name.startswith(APPS_PACKAGE + "."):
            return None, (f"{path!r} must import from the bundled {APPS_PACKAGE} package (nothing is downloaded; "
                          "set rayserve:serve.app_dir to serve your own code)")
        try:
            module = importlib.import_module(module_name)
        except BaseException as exc:  # noqa: BLE001 - a module may raise anything, SystemExit included
            return None, import_failure(module_name, exc, self.root)
        if not _inside(getattr(module, "__file__", None), self.root):
            where = getattr(module, "__file__", None) or "a built-in module"
            return None, (f"{module_name!r} resolves outside {self.root} (to {where}); import paths must name "
                          "modules of the apps' code (rename a module that shadows an installed one)")
        if not hasattr(module, attr):
            return None, f"{module_name!r} has no attribute {attr!r}"
        return getattr(module, attr), ""


def _pydantic_model(annotation) -> Optional[type]:
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def user_config_model(cls: Any) -> Optional[type]:
    """The pydantic model a deployment's `reconfigure(self, config: Model)` annotates, if any."""
    import inspect

    method = getattr(cls, "reconfigure", None) if isinstance(cls, type) else None
    if method is None:
        return None
    params = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
    if not params:
        return None
    try:
        hints = typing.get_type_hints(method)
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate is no model
        hints = {}
    return _pydantic_model(hints.get(params[0].name, params[0].annotation))


def model_path(model: type) -> str:
    """A user_config model's import path (`module:Name`): what the verdict records."""
    return f"{model.__module__}:{model.__qualname__}"


def typed_user_config_errors(model: type, value: Any, where: str) -> list[str]:
    """`value` against the model as JSON, strictly (types as JSON has them: "3" is not 3)."""
    from pydantic import ValidationError

    from rayserve_pulumi.config.errors import format_pydantic_errors

    try:
        model.model_validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        return format_pydantic_errors(f"{where}.", exc, value)
    return []


def app_deployments(app: Any) -> dict[str, Any]:
    """Deployment name -> its Deployment, in the graph an Application binds (what `serve build` lists)."""
    from ray.serve.deployment import Application

    found: dict[str, Any] = {}

    def visit(value: Any) -> None:
        if isinstance(value, Application):
            dep = value._bound_deployment
            if dep.name not in found:
                found[dep.name] = dep
                for arg in (*dep.init_args, *dep.init_kwargs.values()):
                    visit(arg)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    visit(app)
    return found


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def _runtime_env_error(env: Any, where: str) -> Optional[str]:
    bad = DOWNLOADING_RUNTIME_ENV_KEYS & set(env or {})
    return f"{where}: {sorted(bad)} download at deploy time; bake them into the image" if bad else None


def code_errors(config: dict, code: Code, added: dict[str, list[str]]) -> tuple[list[str], dict]:
    """Every import path anywhere resolves inside the code; applications name an Application whose code
    holds every deployment the config names; no runtime_env downloads at any level; each user_config fits
    its deployment's model. Returns (errors, application -> deployment -> facts)."""
    from ray.serve.deployment import Application

    errors: list[Optional[str]] = []

    def imported(path: Any, where: str, must_be=None, what: str = "") -> Any:
        obj, why = code.resolve(path)
        if why:
            errors.append(f"{where}: {why}")
        elif must_be is not None and not isinstance(obj, must_be):
            errors.append(f"{where}: {path!r} is a {type(obj).__name__}, not {what}")
            return None
        return obj

    for i, servicer in enumerate(_get(config.get("grpc_options"), "grpc_servicer_functions") or []):
        imported(servicer, f"{WHERE}grpc_options.grpc_servicer_functions[{i}]")
    if _get(config.get("tracing_config"), "exporter_import_path") is not None:
        imported(config["tracing_config"]["exporter_import_path"], f"{WHERE}tracing_config.exporter_import_path")
    errors.append(_runtime_env_error(_get(config.get("controller_options"), "runtime_env"),
                                     f"{WHERE}controller_options.runtime_env"))
    facts: dict[str, dict] = {}
    apps = config.get("applications") if isinstance(config.get("applications"), list) else []
    for i, app in enumerate(a for a in apps if isinstance(a, dict)):
        where = f"{WHERE}applications{path_of([i], apps)}"
        application = imported(app.get("import_path"), f"{where}.import_path", Application, "a Serve application")
        errors.append(_runtime_env_error(app.get("runtime_env"), f"{where}.runtime_env"))
        if _get(app.get("autoscaling_policy"), "policy_function") is not None:
            imported(app["autoscaling_policy"]["policy_function"], f"{where}.autoscaling_policy.policy_function")
        in_code = app_deployments(application) if application is not None else {}
        models = {name: user_config_model(dep.func_or_class) for name, dep in in_code.items()}
        if isinstance(app.get("name"), str):
            facts[app["name"]] = {name: {"ray_actor_options": dict(dep.ray_actor_options or {}),
                                         "model": model_path(models[name]) if models[name] else None}
                                  for name, dep in in_code.items()}
        deployments = app.get("deployments") if isinstance(app.get("deployments"), list) else []
        for j, dep in enumerate(d for d in deployments if isinstance(d, dict)):
            at = f"{where}.deployments{path_of([j], deployments)}"
            name = dep.get("name")
            if application is not None and isinstance(name, str) and name not in in_code:
                if name in added.get(app.get("name"), ()):
                    at = f"rayserve:serve.overrides.{app['name']}.{name}"
                    errors.append(f"{at}: application {app['name']!r} has no deployment {name!r} (have "
                                  f"{sorted(in_code)})")
                else:
                    errors.append(f"{at}: the application's code has no deployment {name!r} (it has {sorted(in_code)})")
            elif dep.get("user_config") is not None and name in in_code and not callable(
                    getattr(in_code[name].func_or_class, "reconfigure", None)):
                errors.append(f"{at}.user_config: {name} has no reconfigure method to receive it (Serve refuses the "
                              "deployment); add one, or drop the user_config")
            elif models.get(name) is not None and dep.get("user_config") is not None:
                errors += typed_user_config_errors(models[name], dep["user_config"], f"{at}.user_config")
            errors.append(_runtime_env_error(_get(dep.get("ray_actor_options"), "runtime_env"),
                                             f"{at}.ray_actor_options.runtime_env"))
            router = dep.get("request_router_config")
            if _get(router, "request_router_class") is not None:
                imported(router["request_router_class"], f"{at}.request_router_config.request_router_class")
            policy = _get(dep.get("autoscaling_config"), "policy")
            if _get(policy, "policy_function") is not None:
                imported(policy["policy_function"], f"{at}.autoscaling_config.policy.policy_function")
            actors = dep.get("deployment_actors") if isinstance(dep.get("deployment_actors"), list) else []
            for k, actor in enumerate(a for a in actors if isinstance(a, dict)):
                name_at = f"{at}.deployment_actors{path_of([k], actors)}"
                imported(actor.get("actor_class"), f"{name_at}.actor_class")
                errors.append(_runtime_env_error(_get(actor.get("actor_options"), "runtime_env"),
                                                 f"{name_at}.actor_options.runtime_env"))
    return [e for e in errors if e], facts


def check(config: Any, app_dir: Optional[str], added: Optional[dict[str, list[str]]] = None) -> dict:
    """The whole check of a resolved Serve config (run where the code may be imported): `{"errors": [...]}`,
    or `{"errors": [], "config": validated, "apps": facts}`."""
    from rayserve_pulumi.config.serve import strict_errors, user_config_errors, validate_schema

    if not isinstance(config, dict):
        return {"errors": [f"{WHERE.strip()}: must be a mapping with `applications:`, not {type(config).__name__}"]}
    errors = strict_errors(config) + user_config_errors(config)
    code_found, facts = code_errors(config, Code(app_dir), added or {})
    errors += code_found
    if errors:
        return {"errors": errors}
    try:
        validated = validate_schema(config)
    except ConfigError as exc:
        return {"errors": list(exc.lines)}
    return {"errors": [], "config": validated, "apps": facts}


def check_typed(items: list[dict], app_dir: Optional[str]) -> dict:
    """The child's side of check_models."""
    code, errors = Code(app_dir), []
    for item in items:
        model, why = code.resolve(item["model"])
        if why or _pydantic_model(model) is None:
            return {"errors": [f"{item['where']}: its model {item['model']!r} is gone ({why or 'not a model'})"]}
        errors += typed_user_config_errors(model, item["value"], item["where"])
    return {"errors": errors}


def main() -> int:
    """Answer each request line on stdin with one answer line, until stdin closes. Anything the code prints
    goes to stderr: stdout carries the answers only."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("mode") == "models":
            answer = check_typed(request["items"], request.get("app_dir"))
        else:
            answer = check(request["config"], request.get("app_dir"), request.get("added"))
        answers.write(json.dumps(answer, default=repr) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
