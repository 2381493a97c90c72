"""A team's own apps (`rayserve:serve.app_dir`), without Ray running: a project made in a temporary folder
outside the checkout validates against its own code and renders for local and EKS (the image built from
its app_dir); every bad input is one line naming its key, and nothing else happens."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi import cli
from rayserve_pulumi.aws.image import build_inputs, context_hash, dockerfile_text
from rayserve_pulumi.config import ConfigError
from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.config.verdict import fingerprint
from rayserve_pulumi.config.serve import resolve_serve_config
from rayserve_pulumi.config.stack import LocalSettings, ServeSettings
from rayserve_pulumi.local import provider_inputs
from rayserve_pulumi.local.lifecycle import LocalServe, head_env, with_code_version
from rayserve_pulumi.preview import preview
from tests.pulumi_harness import ROOT

EXAMPLE = ROOT / "examples" / "own-app"


def copy_example(name: str, into: Path) -> Path:
    """An example project copied to `into` (caches and state left out)."""
    dest = into / name
    shutil.copytree(ROOT / "examples" / name, dest, ignore=shutil.ignore_patterns("__pycache__", ".pulumi-state"))
    return dest


@pytest.fixture
def project():
    """The own-app example copied to a temporary folder outside the checkout: its package under src/."""
    with tempfile.TemporaryDirectory(prefix="shop-project-") as folder:
        dest = copy_example("own-app", Path(folder))
        assert not dest.resolve().is_relative_to(ROOT)
        yield dest


def values(project: Path, stack: str = "local") -> dict:
    from rayserve_pulumi.config import read_stack_file

    return read_stack_file(project / f"Pulumi.{stack}.yaml")


def errors_of(vals: dict, project: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_stack(vals, project)
    return caught.value.lines


def edit_config(project: Path, change) -> None:
    path = project / "serve_config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def echo(config: dict) -> dict:
    return next(d for d in config["applications"][0]["deployments"] if d["name"] == "Echo")


def test_an_own_project_validates_against_its_code(project):
    cfg, serve_config = validate_stack(values(project), project)
    assert serve_config["applications"][0]["import_path"] == "shop.echo:app"
    assert cfg.serve.app_dir == "src"
    assert not list(project.rglob("__pycache__"))  # the check wrote nothing into the team's folder


def test_its_code_is_never_imported_by_the_program(project):
    validate_stack(values(project), project)
    assert "shop" not in sys.modules and "shop.echo" not in sys.modules


def test_a_typod_deployment_name_is_refused_naming_it(project):
    edit_config(project, lambda c: echo(c).update(name="Ecoh"))
    assert errors_of(values(project), project) == [
        "serve config applications[echo].deployments[Ecoh]: the application's code has no deployment 'Ecoh' "
        "(it has ['Echo', 'Shouter'])"]


def test_a_user_config_failing_the_apps_model_is_refused_naming_the_field(project):
    edit_config(project, lambda c: echo(c)["user_config"].update(max_length="long", colour="red"))
    assert errors_of(values(project), project) == [
        "serve config applications[echo].deployments[Echo].user_config.max_length: Input should be a valid "
        "integer (got 'long')",
        "serve config applications[echo].deployments[Echo].user_config.colour: Extra inputs are not permitted "
        "(unknown key)"]


def test_a_stack_override_is_checked_against_the_model_too(project):
    vals = values(project)
    vals["serve"]["overrides"] = {"echo": {"Echo": {"user_config": {"greeting": ""}}}}
    assert errors_of(vals, project) == [
        "serve config applications[echo].deployments[Echo].user_config.greeting: String should have at least 1 "
        "character"]


def test_an_untyped_deployment_keeps_the_json_checks(project):
    edit_config(project, lambda c: c["applications"][0]["deployments"][1].update(user_config={"exclaim": "x"}))
    validate_stack(values(project), project)  # a dict parameter: any JSON object is passed on


def test_the_bundled_price_abc_is_refused_before_deploy():
    from tests.pulumi_harness import stack_values, with_user_config

    with pytest.raises(ConfigError) as caught:
        validate_stack(with_user_config(stack_values("local"), "abc"), ROOT)
    assert caught.value.lines == ["serve config applications[fruit].deployments[MangoStand].user_config.price: "
                                  "Input should be a valid number (got 'abc')"]


def test_rayserve_up_refuses_price_abc_and_touches_nothing(tmp_path, capsys):
    from tests.pulumi_harness import stack_values, with_user_config

    stack = tmp_path / "Pulumi.local.yaml"
    vals = with_user_config(stack_values("local"), "abc")
    stack.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in vals.items()}}))
    (tmp_path / "Pulumi.yaml").write_text("name: t\nruntime: python\n")
    assert cli.main(["up", str(stack)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{stack}: serve config applications[fruit].deployments[MangoStand].user_config.price: Input "
                   "should be a valid number (got 'abc')"]
    assert not (tmp_path / ".pulumi-state").exists()  # no state, no head: nothing was started


def _write(project: Path, rel: str, text: str) -> None:
    (project / rel).parent.mkdir(parents=True, exist_ok=True)
    (project / rel).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("case, expected", [
    ("outside", "serve config applications[echo].import_path: 'os.path' resolves outside"),
    ("bundled", "serve config applications[echo].import_path: 'rayserve_pulumi.serve_apps.fruit' resolves outside"),
    ("no module", "serve config applications[echo].import_path: no module 'shop.nope' in "),
    ("syntax", "serve config applications[echo].import_path: cannot import 'shop.echo': shop/echo.py line 3: "
               "SyntaxError: "),
    ("missing package", "serve config applications[echo].import_path: cannot import 'shop.echo': shop/helpers.py "
                        "line 2: no module named 'left_pad': the package 'left_pad' is not installed here"),
    ("raises", "serve config applications[echo].import_path: cannot import 'shop.echo': shop/echo.py line 4: "
               "KeyError: 'SHOP_DATABASE_URL'"),
    ("no app_dir", "rayserve:serve.app_dir: "),
    ("a file", "rayserve:serve.app_dir: "),
    ("requirements", "rayserve:serve.requirements: "),
    ("dockerfile", "rayserve:serve.app_dir: "),
])
def test_bad_input_is_one_line_naming_its_key(project, case, expected):
    vals = values(project)
    if case == "outside":
        edit_config(project, lambda c: c["applications"][0].update(import_path="os.path:join"))
    elif case == "bundled":
        edit_config(project, lambda c: c["applications"][0].update(import_path="rayserve_pulumi.serve_apps.fruit:app"))
    elif case == "no module":
        edit_config(project, lambda c: c["applications"][0].update(import_path="shop.nope:app"))
    elif case == "syntax":
        _write(project, "src/shop/echo.py", '"""Broken."""\n\ndef oops(:\n    pass\n')
    elif case == "missing package":
        _write(project, "src/shop/helpers.py", '"""Needs a package nobody installed."""\nimport left_pad\n')
        _write(project, "src/shop/echo.py", (project / "src/shop/echo.py").read_text().replace(
            "from pydantic", "from shop import helpers  # noqa\nfrom pydantic", 1))
    elif case == "raises":
        _write(project, "src/shop/echo.py", '"""Reads its settings at import."""\nimport os\n\nURL = os.environ["SHOP_DATABASE_URL"]\n')
    elif case == "no app_dir":
        vals["serve"]["app_dir"] = "nowhere"
    elif case == "a file":
        vals["serve"]["app_dir"] = "serve_config.yaml"
    elif case == "requirements":
        vals["serve"]["requirements"] = "missing.txt"
    elif case == "dockerfile":
        (project / "src" / "Dockerfile").mkdir()
    lines = errors_of(vals, project)
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_code_that_blocks_at_import_is_stopped_by_the_timeout(project):
    _write(project, "src/shop/echo.py", '"""Waits for a server that never answers."""\nimport time\n\ntime.sleep(600)\n')
    vals = values(project)
    vals["serve"]["import_timeout_s"] = 3
    lines = errors_of(vals, project)
    assert len(lines) == 1 and lines[0].startswith("rayserve:serve.import_timeout_s: importing the apps' code"), lines


def test_a_code_change_changes_the_fingerprint_and_redeploys_in_place(project):
    vals = values(project)
    cfg, serve_config = validate_stack(vals, project)
    code = AppCode.locate("src", None, project)
    resolved, _ = resolve_serve_config(cfg.serve, project)
    before = fingerprint(vals, resolved, code), provider_inputs(cfg.local, serve_config, "/run", code=code)
    with (project / "src" / "shop" / "echo.py").open("a") as f:
        f.write("\n# a change\n")
    after = fingerprint(vals, resolved, code), provider_inputs(cfg.local, serve_config, "/run", code=code)
    assert before[0] != after[0]  # the recorded verdict no longer holds: the full validation runs
    assert LocalServe.diff(before[1], after[1]) == (True, [])  # a Serve redeploy in the same head
    assert after[1]["app_dir"] == str(project / "src") and head_env(after[1])["PYTHONPATH"].split(":")[0] == str(project / "src")
    deployed = with_code_version(serve_config, after[1]["code_version"])
    assert deployed["applications"][0]["runtime_env"]["env_vars"]["RAYSERVE_CODE_VERSION"] == after[1]["code_version"]


def test_the_image_is_built_from_the_app_dir_and_its_tag_follows_its_content(project):
    code = AppCode.locate("src", None, project)
    inputs = build_inputs(code)
    assert inputs["context"]["location"] == str(project / "src")
    assert set(inputs["context"]["named"]) == {"rayserve"}  # the package's validator, beside the team's code
    assert "FROM ${BASE_IMAGE}" in inputs["dockerfile"]["inline"] and "pip install" not in inputs["dockerfile"]["inline"]
    tag = context_hash(code=code)
    assert context_hash(code=code) == tag  # unchanged app, unchanged tag
    (project / "src" / "shop" / "new.py").write_text("X = 1\n")
    assert context_hash(code=code) != tag
    (project / "src" / "requirements.txt").write_text("pyyaml>=6\n")
    with_reqs = AppCode.locate("src", None, project)
    assert "COPY --chown=ray:users requirements.txt /tmp/app-requirements.txt" in dockerfile_text(with_reqs)
    (project / "src" / "Dockerfile").write_text("FROM rayproject/ray:2.60.0-py311-cpu\nCOPY . /home/ray/app\n")
    own = AppCode.locate("src", None, project)
    assert build_inputs(own)["dockerfile"] == {"location": str(project / "src" / "Dockerfile")}
    assert context_hash(code=own) != context_hash(code=with_reqs)


def _image(rendered) -> dict:
    return rendered.one("docker-build:index:Image").inputs


def test_renders_for_local_and_eks_with_the_image_context_the_app_dir(project):
    local = preview(values(project, "local"), "local", program_dir=project)
    props = local.one("pulumi-python:dynamic:Resource").inputs
    assert props["app_dir"] == str(project / "src")
    assert json.loads(props["serve_config_json"])["applications"][0]["import_path"] == "shop.echo:app"
    eks = preview(values(project, "eks"), "eks", program_dir=project)
    assert _image(eks)["context"]["location"] == str(project / "src")
    spec = eks.one("kubernetes:ray.io/v1:RayService").inputs["spec"]
    assert "import_path: shop.echo:app" in spec["serveConfigV2"]


def test_the_vm_image_carries_the_same_code():
    example = ROOT / "examples" / "with-requirements"
    r = preview(values(example, "vm"), "vm", program_dir=example)
    assert _image(r)["context"]["location"] == str(example / "app")
    assert "pip install --no-cache-dir -r /tmp/app-requirements.txt" in _image(r)["dockerfile"]["inline"]


def test_the_image_validator_checks_a_config_against_the_app_dir(project):
    config = yaml.safe_load((project / "serve_config.yaml").read_text())
    echo(config)["user_config"]["max_length"] = -1
    proc = subprocess.run([sys.executable, "-m", "rayserve_pulumi.config.serve_check", "-"], input=json.dumps(config),
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "RAYSERVE_APP_DIR": str(project / "src")})
    assert proc.returncode == 1
    assert proc.stdout.strip() == ("serve config applications[echo].deployments[Echo].user_config.max_length: Input "
                                   "should be greater than or equal to 1")


def test_local_requirements_must_be_installed_here(project):
    (project / "src" / "requirements.txt").write_text("pyyaml>=6\nleft-pad-nowhere==1.0\npydantic<1\n")
    lines = errors_of(values(project), project)
    assert [line.split(": ", 2)[2] for line in lines] == [
        f"left-pad-nowhere is not installed in this environment ({sys.executable}); the local platform runs the "
        "apps here: pip install 'left-pad-nowhere==1.0'",
        f"pydantic {__import__('pydantic').VERSION} is installed, but the apps need 'pydantic<1'"]
    assert all(line.startswith("rayserve:serve.requirements: ") for line in lines)


def test_serve_settings_keep_bundled_defaults():
    assert ServeSettings().app_dir is None and AppCode.locate(None).bundled
    assert provider_inputs(LocalSettings(), {"applications": []}, "/run")["app_dir"] is None


def test_the_readme_own_app_section_is_the_example():
    import re

    section = (ROOT / "README.md").read_text().split("## Deploy your own app", 1)[1].split("\n## ", 1)[0]
    stack = re.search(r"```yaml\n# Pulumi.local.yaml\n(.*?)```", section, re.S).group(1)
    assert yaml.safe_load(stack) == yaml.safe_load((EXAMPLE / "Pulumi.local.yaml").read_text())
    code = (EXAMPLE / "src" / "shop" / "echo.py").read_text()
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = [line.strip() for line in snippet.splitlines() if line.strip() not in ("", "...")]
    assert shown and all(line in code for line in shown), [line for line in shown if line not in code]
    assert "rayserve up examples/own-app/Pulumi.local.yaml" in section


def test_a_user_config_for_a_deployment_without_reconfigure_is_refused(project):
    echo_py = project / "src" / "shop" / "echo.py"
    echo_py.write_text(echo_py.read_text().replace("def reconfigure(self, config: dict):", "def configure(self, config: dict):"))
    assert errors_of(values(project), project) == [
        "serve config applications[echo].deployments[Shouter].user_config: Shouter has no reconfigure method to "
        "receive it (Serve refuses the deployment); add one, or drop the user_config"]
