"""The package as a user gets it: a wheel built from a clean copy of the checkout, installed into a
fresh virtual environment outside it, and the README's "from another program" example run there.

The fresh environment gets the wheel with --no-deps and reaches the already-installed, pinned
dependencies through a .pth line (no network); that line does not run the checkout's editable finder,
so `rayserve_pulumi` can only come from the wheel.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

EXAMPLE_HEADING = "## Use the components from another program"


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def clean_copy(dest: Path) -> Path:
    """What a clean checkout of this work tree holds: tracked and not-ignored files only."""
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    src = clean_copy(base / "src")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", base / "dist", src])
    wheel = next((base / "dist").glob("rayserve_pulumi-*.whl"))
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel])
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"python": python, "site": Path(site), "base": base}


def test_only_rayserve_pulumi_is_installed(fresh_env):
    shown = _run([fresh_env["python"], "-m", "pip", "show", "-f", "rayserve-pulumi"]).stdout
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    scripts = [f for f in files if f.startswith("../")]
    assert [Path(f).name for f in scripts] == ["rayserve"]  # the console script, in the environment's bin/
    tops = {f.split("/")[0] for f in files if f not in scripts}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"rayserve_pulumi"}, tops
    for package_data in ("serve_config.yaml", "Dockerfile", "requirements.txt"):
        assert f"rayserve_pulumi/serve_apps/{package_data}" in files
    for absent in ("components", "bench", "policy", "tests", "serve_apps"):
        assert not (fresh_env["site"] / absent).exists()


def test_the_wheel_is_a_package_a_team_can_depend_on(fresh_env):
    """py.typed, the lock, the license and the one version, as the wheel's metadata says them."""
    from importlib.metadata import PathDistribution

    import rayserve_pulumi

    site = fresh_env["site"]
    for shipped in ("py.typed", "constraints.txt"):
        assert (site / "rayserve_pulumi" / shipped).is_file(), shipped
    dist = PathDistribution(next(site.glob("rayserve_pulumi-*.dist-info")))
    assert dist.version == rayserve_pulumi.__version__
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert (dist._path / "licenses" / "LICENSE").read_text().lstrip().startswith("Apache License")
    ranged = [r for r in dist.requires if "extra ==" not in r]
    assert ranged and not any("==" in r for r in ranged), ranged  # ranges, never pins


def test_the_wheel_installs_beside_other_pulumi_packages_with_its_dependencies_resolved(tmp_path_factory, fresh_env):
    """`pip install` of the wheel (dependencies resolved, no --no-deps, no index) into an environment that
    already holds other Pulumi packages (pulumi-random, pulumi-docker, pulumi-aws, ...) at the lock's
    versions: the ranges are satisfied by what is there, nothing else is installed, and `pip check` agrees."""
    base = tmp_path_factory.mktemp("beside")
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "others.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # ensurepip's own setuptools would shadow the environment's (torch asks for a newer one)
    _run([python, "-m", "pip", "uninstall", "-y", "-q", "--disable-pip-version-check", "setuptools"])
    wheel = next((fresh_env["base"] / "dist").glob("rayserve_pulumi-*.whl"))
    installed = _run([python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", wheel]).stdout
    assert "Successfully installed rayserve-pulumi-" in installed, installed
    assert installed.strip().splitlines()[-1].split()[2:] == [f"rayserve-pulumi-{_wheel_version(wheel)}"]
    _run([python, "-m", "pip", "check", "--disable-pip-version-check"])


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def test_the_installed_package_imports_outside_the_checkout_and_reads_its_data(fresh_env, tmp_path):
    probe = _run([fresh_env["python"], "-c",
                  "import json, rayserve_pulumi, rayserve_pulumi.program, rayserve_pulumi.aws.eks, rayserve_pulumi.aws.vm\n"
                  "from rayserve_pulumi.config import ServeSettings, build_serve_config\n"
                  "from rayserve_pulumi.aws.image import context_hash\n"
                  "c = build_serve_config(ServeSettings())\n"
                  "print(json.dumps({'file': rayserve_pulumi.__file__, 'apps': [a['name'] for a in c['applications']],"
                  " 'hash': context_hash()}))"], cwd=tmp_path)
    out = json.loads(probe.stdout)
    assert out["file"].startswith(str(fresh_env["site"]))
    assert out["apps"] == ["fruit", "calc", "summarize_translate"]
    assert re.fullmatch(r"[0-9a-f]{12}", out["hash"])


RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])  # the checkout, for tests.pulumi_harness (the mocks) only
import rayserve_pulumi
from tests.pulumi_harness import render
code = open("example.py").read()
ns = {}
r = render({}, "example", program=lambda: (exec(code, ns), ns["platform"].outputs())[1])
spec = r.one("kubernetes:ray.io/v1:RayService").inputs["spec"]
print(json.dumps({"package": rayserve_pulumi.__file__, "types": sorted(r.types()), "outputs": r.outputs,
                  "namespaces": [n.inputs["metadata"]["name"] for n in r.of_type("kubernetes:core/v1:Namespace")],
                  "gcs": spec["rayClusterConfig"].get("gcsFaultToleranceOptions"),
                  "rayservice_deps": r.one("rayserve:kuberay:RayService").dependencies}))
"""


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(EXAMPLE_HEADING, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_declares_an_eks_platform_with_gcs_fault_tolerance(fresh_env, tmp_path):
    (tmp_path / "example.py").write_text(readme_example())
    (tmp_path / "runner.py").write_text(RUNNER)
    out = json.loads(_run([fresh_env["python"], "runner.py", ROOT], cwd=tmp_path).stdout.splitlines()[-1])
    assert out["package"].startswith(str(fresh_env["site"]))
    for needed in ("rayserve:aws:EksPlatform", "eks:index:Cluster", "rayserve:kuberay:KubeRayOperator",
                   "kubernetes:helm.sh/v3:Release", "rayserve:kuberay:CheckpointStorage", "kubernetes:apps/v1:StatefulSet",
                   "kubernetes:core/v1:Secret", "kubernetes:ray.io/v1:RayService"):
        assert needed in out["types"], needed
    assert "ray" in out["namespaces"]  # the RayService's namespace is declared, not assumed
    assert out["gcs"]["redisAddress"].endswith(".ray.svc.cluster.local:6379")
    assert any("KubeRayOperator" in d for d in out["rayservice_deps"])
    assert sorted(out["outputs"]["app_urls"]) == ["calc", "fruit"]


def test_the_installed_command_validates_a_stack_outside_the_checkout(fresh_env, tmp_path):
    stack = tmp_path / "Pulumi.dev.yaml"
    shutil.copy(ROOT / "stacks" / "Pulumi.dev.yaml", stack)
    out = _run([fresh_env["python"].parent / "rayserve", "validate", stack], cwd=tmp_path).stdout
    assert "valid eks stack 'rayserve-dev'" in out


# ---- the examples, as a team would use them: the installed wheel, the project outside the checkout ----------

EXAMPLES = {"own-app": ("src", ("local", "eks")), "with-requirements": ("app", ("local", "vm"))}
RENDER = """
import json, sys
sys.path.insert(0, sys.argv[1])  # the checkout, for tests.pulumi_harness (the mocks) only
from pathlib import Path
import rayserve_pulumi
from rayserve_pulumi.config import read_stack_file
from rayserve_pulumi.preview import preview
project, stack = Path(sys.argv[2]), sys.argv[3]
r = preview(read_stack_file(project / f"Pulumi.{stack}.yaml"), stack, program_dir=project)
images = [x.inputs["context"]["location"] for x in r.of_type("docker-build:index:Image")]
local = [x.inputs["app_dir"] for x in r.of_type("pulumi-python:dynamic:Resource")]
print(json.dumps({"package": rayserve_pulumi.__file__, "image_context": images, "local_app_dir": local}))
"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The examples copied outside the checkout (a team's own project folders)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="examples-") as folder:
        for name in EXAMPLES:
            shutil.copytree(ROOT / "examples" / name, Path(folder) / name,
                            ignore=shutil.ignore_patterns("__pycache__", ".pulumi-state"))
        yield Path(folder)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_examples_validate_and_render_from_the_wheel(fresh_env, examples, example):
    project = examples / example
    app_dir, stacks = EXAMPLES[example]
    (project / "render.py").write_text(RENDER)
    for stack in stacks:
        out = _run([fresh_env["python"].parent / "rayserve", "validate", project / f"Pulumi.{stack}.yaml"],
                   cwd=project).stdout
        app = "echo" if example == "own-app" else "notes"
        assert f"valid {stack} stack" in out and f"1 application(s) ({app})" in out, out
        rendered = json.loads(_run([fresh_env["python"], "render.py", ROOT, project, stack],
                                   cwd=project).stdout.splitlines()[-1])
        assert rendered["package"].startswith(str(fresh_env["site"]))
        if stack == "local":
            assert rendered["local_app_dir"] == [str(project / app_dir)]
        else:  # the image is built from the example's own code
            assert rendered["image_context"] == [str(project / app_dir)]


@pytest.mark.ray
def test_the_own_app_example_serves_from_the_wheel(fresh_env, examples):
    from tests.helpers import free_local_ports, free_port, post

    project = examples / "own-app"
    stack = project / "Pulumi.local.yaml"
    doc = yaml.safe_load(stack.read_text())
    doc["config"]["rayserve:local"] = free_local_ports()
    doc["config"]["rayserve:serve"]["http_port"] = free_port()
    stack.write_text(yaml.safe_dump(doc))
    rayserve = fresh_env["python"].parent / "rayserve"
    try:
        up = subprocess.run([str(rayserve), "up", str(stack)], capture_output=True, text=True, timeout=600, cwd=project)
        assert up.returncode == 0, up.stderr[-3000:]
        out = json.loads(up.stdout)
        assert post(out["app_urls"]["echo"], "from the wheel") == "hello, FROM THE WHEEL!"
    finally:
        subprocess.run([str(rayserve), "destroy", str(stack)], capture_output=True, text=True, timeout=300, cwd=project)
        from rayserve_pulumi.node_agent import ray_ops

        ray_ops.stop(project / ".pulumi-state" / "local" / "shop" / "ray-head.pid")
