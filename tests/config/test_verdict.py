"""Reusing a validation verdict when only user_config values changed (config.verdict): the reused verdict
is the full validation's, case by case; anything else that changed runs the full validation; a typed
deployment's user_config (a pydantic model in `reconfigure`'s annotation) is checked by its model in a
child importing the model's module alone. The untyped deployment is the own-app example's Shouter (a
`dict` parameter); the typed ones are the bundled stands (their models in serve_apps/user_configs.py)."""
from __future__ import annotations

import copy
import datetime
import json
import subprocess
import sys

import pytest
import yaml

from rayserve_pulumi.config import ConfigError, verdict
from rayserve_pulumi.config.validate import validate_resolved, validate_stack
from rayserve_pulumi.config import read_stack_file
from tests.pulumi_harness import ROOT, stack_values, with_user_config

EXAMPLE = ROOT / "examples" / "own-app"
LOCAL = read_stack_file(EXAMPLE / "Pulumi.local.yaml")
SHOUTER = "applications[echo].deployments[Shouter].user_config"


def validate_stack_at(values):
    return validate_stack(values, EXAMPLE)


def reuse(values, saved=None):
    return verdict.validate(values, EXAMPLE, saved)


def with_exclaim(values: dict, n) -> dict:
    return _with_uc(values, {"exclaim": n})


def _outcome(call):
    try:
        return "ok", call()[1]
    except ConfigError as exc:
        return "error", exc.lines


def _refuse_full_validation(monkeypatch) -> None:
    """From here on config.verdict's full validation fails the test: what follows must take the reuse path."""
    monkeypatch.setattr(verdict, "validate_resolved", lambda *a, **k: pytest.fail("the full validation ran"))


def _with_uc(values: dict, user_config) -> dict:
    values = copy.deepcopy(values)
    values.setdefault("serve", {}).setdefault("overrides", {}).setdefault("echo", {})["Shouter"] = {
        "user_config": user_config}
    return values


@pytest.mark.parametrize("user_config", [
    {"price": 11}, {"price": 2.5, "note": "ripe", "tiers": [1, 2, {"a": None, "b": True}]}, {}, None,
    "cheap", [1, 2], {"price": float("nan")}, {"tiers": [float("inf")]}, {"when": datetime.date(2026, 1, 1)},
    {"price": {"set": {1, 2}}},
], ids=repr)
def test_a_reused_verdict_is_the_full_validations(user_config, monkeypatch):
    _, _, saved = reuse(_with_uc(LOCAL, {"price": 3}))
    values = _with_uc(LOCAL, user_config)
    full = _outcome(lambda: validate_stack_at(values))
    _refuse_full_validation(monkeypatch)
    reused = _outcome(lambda: reuse(values, saved=saved))
    assert reused == full
    if full[0] == "error":  # every refusal names the deployment's user_config
        assert all(SHOUTER in line or "rayserve:serve.overrides" in line for line in full[1]), full[1]


@pytest.mark.parametrize("user_config, says", [
    ("cheap", "rayserve:serve.overrides.echo.Shouter.user_config: Input should be a valid dictionary "
              "(got 'cheap')"),
    ({"when": datetime.date(2026, 1, 1)},
     f"serve config {SHOUTER}.when: datetime.date(2026, 1, 1) (date) "
     "is not a JSON value; quote it to pass it as a string"),
], ids=["a string", "a YAML date"])
def test_the_full_validation_refuses_what_reconfigure_could_not_receive(user_config, says):
    with pytest.raises(ConfigError) as exc:
        validate_stack_at(_with_uc(LOCAL, user_config))
    assert exc.value.lines == [says]


@pytest.mark.parametrize("user_config, says", [
    ({1: "one"}, ": key 1 is not a string; user_config is JSON, whose keys are strings (quote it)"),
    ("cheap", ": must be a mapping (or null), not str"),
], ids=["a number as key", "a string"])
def test_a_config_file_user_config_is_checked_alike_both_ways(user_config, says, tmp_path, monkeypatch):
    """A Serve config file of one's own (serve.config_path) reaches user_config_errors without the stack's
    override model in front of it."""
    serve = yaml.safe_load((EXAMPLE / "serve_config.yaml").read_text())
    path = tmp_path / "serve.yaml"
    values = {**LOCAL, "serve": {**LOCAL.get("serve", {}), "config_path": str(path)}}
    path.write_text(yaml.safe_dump(serve))
    _, _, saved = reuse(values)
    serve["applications"][0]["deployments"][1]["user_config"] = user_config
    path.write_text(yaml.safe_dump(serve))
    line = f"serve config {SHOUTER}" + says
    assert _outcome(lambda: validate_stack_at(values)) == ("error", [line])
    _refuse_full_validation(monkeypatch)
    assert _outcome(lambda: reuse(values, saved=saved)) == ("error", [line])


def _set(values: dict, path: str, value) -> dict:
    values = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


@pytest.mark.parametrize("change", [
    lambda v: _set(v, "serve.overrides.echo.Echo.num_replicas", 2),
    lambda v: _set(v, "serve.throughput_optimized", False),
    lambda v: _set(v, "serve.http_port", 8123),
    lambda v: _set(v, "local.num_cpus", 3),
    lambda v: _set(v, "serve.proxy", "default"),
], ids=["num_replicas", "throughput_optimized", "http_port", "num_cpus", "proxy"])
def test_any_other_change_runs_the_full_validation(change, monkeypatch):
    _, _, saved = reuse(with_exclaim(LOCAL, 3))
    ran = []
    monkeypatch.setattr(verdict, "validate_resolved", lambda *a, **k: ran.append(1) or validate_resolved(*a, **k))
    reuse(with_exclaim(change(LOCAL), 4), saved=saved)
    assert ran == [1]
    reuse(with_exclaim(LOCAL, 4), saved=saved)  # the control: only the untyped user_config changed
    assert ran == [1]


@pytest.mark.parametrize("price", [4, 2.5, -1, "abc", None], ids=repr)
def test_a_typed_user_configs_reuse_is_the_full_validations(price, monkeypatch):
    """The bundled stands' price is typed: its reuse checks the model, and says what the full validation says."""
    bundled = stack_values("local")
    _, _, saved = verdict.validate(with_user_config(bundled, 3), ROOT)
    assert saved["typed"]["fruit"]["MangoStand"] == "rayserve_pulumi.serve_apps.user_configs:StandConfig"
    values = with_user_config(bundled, price)
    full = _outcome(lambda: validate_stack(values, ROOT))
    _refuse_full_validation(monkeypatch)
    assert _outcome(lambda: verdict.validate(values, ROOT, saved)) == full
    assert (full[0] == "ok") == (price in (4, 2.5, None))


def test_another_environment_or_code_runs_the_full_validation(monkeypatch, tmp_path):
    _, _, saved = reuse(with_exclaim(LOCAL, 3))
    ran = []
    monkeypatch.setattr(verdict, "validate_resolved", lambda *a, **k: ran.append(1) or validate_resolved(*a, **k))
    version, dists, code = verdict.environment()
    monkeypatch.setattr(verdict, "environment", lambda: (version, dists, "another code"))
    reuse(with_exclaim(LOCAL, 4), saved=saved)
    assert ran == [1]
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"compiled")
    before = verdict.code_digest(tmp_path)
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"recompiled")
    assert verdict.code_digest(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert verdict.code_digest(tmp_path) != before


def test_the_reuse_starts_no_code_check(tmp_path):
    """In a fresh interpreter: the reuse starts no child interpreter; a verdict for other values does (the
    control). Neither imports Ray into the program."""
    _, full, saved = reuse(with_exclaim(LOCAL, 3))
    (tmp_path / "saved.json").write_text(json.dumps(saved))
    script = (
        "import json, sys\n"
        "from rayserve_pulumi.config import code_check, read_stack_file\n"
        "from rayserve_pulumi.config.verdict import validate\n"
        "from tests.config.test_verdict import EXAMPLE, LOCAL, with_exclaim\n"
        "runs, run = [], code_check.run\n"
        "code_check.run = lambda *a, **k: runs.append(1) or run(*a, **k)\n"
        f"saved = json.load(open({str(tmp_path / 'saved.json')!r}))\n"
        "if sys.argv[1] == 'other': saved['fingerprint'] = 'another'\n"
        "_, config, _ = validate(with_exclaim(LOCAL, 7), EXAMPLE, saved)\n"
        "print(json.dumps({'ray': 'ray' in sys.modules, 'checks': len(runs), 'config': config}))\n")
    typed_script = (  # a typed change: one child, which imports the model's module and no Ray
        "import json, sys\n"
        "from rayserve_pulumi.config import code_check\n"
        "from rayserve_pulumi.config.verdict import validate\n"
        "from tests.pulumi_harness import ROOT, stack_values, with_user_config\n"
        "children, child = [], code_check._child\n"
        "code_check._child = lambda request, *a: children.append(request['mode']) or child(request, *a)\n"
        "_, _, saved = validate(with_user_config(stack_values('local'), 3), ROOT)\n"
        "children.clear()\n"
        "_, config, _ = validate(with_user_config(stack_values('local'), 8), ROOT, saved)\n"
        "print(json.dumps({'ray': 'ray' in sys.modules, 'children': children}))\n")
    typed = subprocess.run([sys.executable, "-c", typed_script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert typed.returncode == 0, typed.stderr[-2000:]
    assert json.loads(typed.stdout) == {"ray": False, "children": ["models"]}
    outs = {}
    for case in ("same", "other"):
        proc = subprocess.run([sys.executable, "-c", script, case], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[case] = json.loads(proc.stdout)
    assert outs["same"]["checks"] == 0 and outs["other"]["checks"] == 1
    assert outs["same"]["ray"] is False and outs["other"]["ray"] is False
    assert outs["same"]["config"] == outs["other"]["config"] == validate_stack_at(with_exclaim(LOCAL, 7))[1]
    assert outs["same"]["config"] != full
