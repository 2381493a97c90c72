"""The lock and the ranges agree: every locked version satisfies pyproject.toml's ranges (so CI tests a
release the ranges admit), the environment CI runs in is the lock, and every module says what it exports."""
from __future__ import annotations

import ast
import importlib
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rayserve_pulumi.pysource import parse
from tests.helpers import ROOT

LOCK = ROOT / "components" / "constraints.txt"


def _locked() -> dict[str, str]:
    lines = [line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): pinned for name, _, pinned in (line.partition("==") for line in lines)}


def _ranges() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = (ROOT / "serve_apps" / "requirements.txt").read_text().splitlines()
    return [Requirement(r) for r in [*project["dependencies"], *(e for e in extras if e and not e.startswith("#"))]]


def test_every_dependency_is_a_range_the_locked_version_satisfies():
    locked = _locked()
    for req in _ranges():
        assert not any(s.operator == "==" for s in req.specifier), f"{req}: a range, not a pin"
        assert req.specifier.contains(locked[canonicalize_name(req.name)], prereleases=False), \
            f"{req.name} {locked[canonicalize_name(req.name)]} (locked) is outside {req.specifier}"


def test_the_environment_is_the_lock():
    drift = []
    for name, pinned in _locked().items():
        try:
            installed = version(name).split("+")[0]
        except PackageNotFoundError:
            continue  # an extra this environment does not install
        if installed != pinned:
            drift.append(f"{name} {installed} installed, {pinned} locked")
    assert not drift, drift


MODULES = sorted(p.relative_to(ROOT / "components").with_suffix("") for p in (ROOT / "components").rglob("*.py")
                 if p.name != "__main__.py")


@pytest.mark.parametrize("module", [".".join(("rayserve_pulumi", *m.parts)).removesuffix(".__init__")
                                    for m in MODULES])
def test_every_module_says_what_it_exports(module):
    path = ROOT / "components" / (module.removeprefix("rayserve_pulumi").lstrip(".").replace(".", "/") or "__init__")
    path = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
    tree = parse(path.read_text())
    assert any("__all__" in ast.dump(node) for node in tree.body if isinstance(node, ast.Assign)), module
    mod = importlib.import_module(module)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names {missing}, which it does not define"
