"""The package reads like its architecture: documented interfaces, one definition per fact, and the
stdlib-only node agent importing nothing else."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re

import pydantic
import pytest

import rayserve_pulumi
from rayserve_pulumi import constants
from rayserve_pulumi.args import describe
from rayserve_pulumi.pysource import parse
from tests.helpers import ROOT

MODULES = [m.name for m in pkgutil.walk_packages(rayserve_pulumi.__path__, "rayserve_pulumi.")
           if not m.name.endswith("__main__")]


def _classes():
    for name in MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == name:
                yield obj


def test_every_settings_field_is_described():
    models = [c for c in _classes() if issubclass(c, pydantic.BaseModel)]
    assert len(models) >= 14
    undocumented = [f"{m.__name__}.{n}" for m in models for n, f in m.model_fields.items() if not f.description]
    assert undocumented == []


def test_every_component_args_field_is_described():
    args = [c for c in _classes() if dataclasses.is_dataclass(c) and c.__name__.endswith(("Args", "Ref", "Placement"))]
    assert {a.__name__ for a in args} >= {"EksPlatformArgs", "VmPlatformArgs", "LocalPlatformArgs", "RayServiceArgs",
                                          "KubeRayOperatorArgs", "CheckpointStorageArgs", "EksClusterArgs",
                                          "ServeImageArgs", "RayVmClusterArgs"}
    assert [f"{a.__name__}.{n}" for a in args for n, d in describe(a).items() if not d] == []


def test_component_type_tokens_name_their_module():
    import pulumi
    found = 0
    for cls in _classes():
        if issubclass(cls, pulumi.ComponentResource):
            source = importlib.import_module(cls.__module__).__file__
            tokens = re.findall(r'"(rayserve:[a-z_]+:[A-Z]\w+)"', open(source).read())
            for token in tokens:
                _, module, name = token.split(":")
                if module == "index":  # the component provider's: its host puts every component in `index`
                    from rayserve_pulumi.provider.component import ProviderComponent

                    assert issubclass(cls, ProviderComponent) and name == cls.__name__, (token, cls)
                else:
                    assert module in cls.__module__.split("."), (token, cls.__module__)
                found += 1
    assert found >= 9


FACTS = {str(v) for v in (constants.GCS_PORT, constants.DASHBOARD_PORT, constants.CLIENT_PORT,
                          constants.GCS_REDIS_PORT, constants.METRICS_PORT)} | {
    constants.REDIS_IMAGE, constants.RAY_VERSION, constants.KUBERAY_CHART_VERSION, constants.NODE_GROUP_LABEL,
    constants.GPU_RESOURCE}


@pytest.mark.parametrize("name", [m for m in MODULES if m != "rayserve_pulumi.constants"])
def test_facts_are_defined_once_in_constants(name):
    tree = parse(open(importlib.import_module(name).__file__).read())
    literals = {str(n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and not isinstance(n.value, bool)}
    assert literals & FACTS == set()


# Functions of the node agent that run inside Ray's own processes (the launcher carries their source into
# Ray's image), where Ray is there to import.
RUNS_INSIDE_RAY = {"raylet_told_listen_port"}


def test_node_agent_imports_only_the_standard_library_and_constants():
    import sys
    allowed = set(sys.stdlib_module_names) | {"rayserve_pulumi"}
    for path in (ROOT / "components" / "node_agent").glob("*.py"):
        tree = parse(path.read_text())
        inside_ray = {id(node) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in RUNS_INSIDE_RAY
                      for node in ast.walk(f)}
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for n in names:
                assert n.split(".")[0] in allowed | ({"ray"} if id(node) in inside_ray else set()), \
                    f"{path.name} imports {n}"
                if n.startswith("rayserve_pulumi"):
                    assert n in ("rayserve_pulumi.constants", "rayserve_pulumi.node_agent", "rayserve_pulumi.observability") \
                        or n.startswith(("rayserve_pulumi.node_agent.", "rayserve_pulumi.observability.prometheus",
                                         "rayserve_pulumi.observability.rules")), f"{path.name} imports {n}"


def test_the_package_root_imports_nothing():
    tree = parse((ROOT / "components" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_serve_apps_import_nothing_of_the_package_but_themselves():
    """The apps stand alone in the image beside the validator (see its Dockerfile)."""
    for path in (ROOT / "serve_apps").glob("*.py"):
        for node in ast.walk(parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rayserve_pulumi"):
                assert node.module.startswith("rayserve_pulumi.serve_apps"), f"{path.name} imports {node.module}"


KILL_BY_NAME = re.compile(r"\b(pkill|killall)\b|ray stop --force|ray\W+stop\W+--force|\"stop\", \"--force\"")


def test_nothing_stops_processes_by_name():
    """Scripts, CI, tests, benchmarks and the package end only what they started (PID files, sessions)."""
    files = [ROOT / ".ci" / "run", *(ROOT / "scripts").glob("*"), *(ROOT / "tests").rglob("*.py"),
             *(ROOT / "bench").rglob("*.py"), *(ROOT / "components").rglob("*.py")]
    offenders = [f"{f.relative_to(ROOT)}:{n}" for f in files if f.is_file() and f.name != "test_architecture.py"
                 for n, line in enumerate(f.read_text().splitlines(), 1) if KILL_BY_NAME.search(line)]
    assert offenders == []


PLATFORM_FOLDERS = ("local", "aws", "kubernetes")  # a platform's own folder may name itself
NAME_COMPARISON = re.compile(r"platform\s*(==|!=|\bin\b)|(==|!=)\s*[\"'](eks|vm|local|kubernetes)[\"']|"
                             r"[\"'](eks|vm|local|kubernetes)[\"']\s*(==|!=|\bin\b)")


def test_no_code_outside_a_platform_folder_asks_which_platform_it_is():
    """Shared code asks the platform's description (registry.platform), never compares names."""
    package = ROOT / "components"
    found = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package)
        if rel.parts[0] in PLATFORM_FOLDERS or rel.name == "registry.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_COMPARISON.search(line.split("#", 1)[0]):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []


def test_the_name_comparison_pattern_finds_what_it_is_for():
    for line in ('if cfg.platform == "eks":', "if self.platform in ('eks', 'vm'):", 'elif kind != "local":'):
        assert NAME_COMPARISON.search(line), line
    assert not NAME_COMPARISON.search("spec = platform(cfg.platform)")


def test_every_registered_platform_describes_itself():
    from rayserve_pulumi.platform_spec import PlatformSpec
    from rayserve_pulumi.registry import PLATFORMS, platform, platform_class

    for name in PLATFORMS:
        spec = platform(name)
        assert isinstance(spec, PlatformSpec) and spec.name == name
        assert platform_class(name).NAME == name


def test_every_package_folder_is_in_the_wheel():
    """A folder of the package missing from pyproject's `packages` installs from a checkout (editable) and
    fails from the wheel with ModuleNotFoundError: every folder with an __init__.py is listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    package = ROOT / "components"
    found = {"rayserve_pulumi." + ".".join(p.parent.relative_to(package).parts) if p.parent != package
             else "rayserve_pulumi" for p in package.rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found - listed == set()
