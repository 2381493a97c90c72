"""Static checks of the bundled apps, their config and the image recipe (no Ray needed)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from rayserve_pulumi.aws.image import IMAGE_PATHS, image_files, package_dir
from rayserve_pulumi.config import ServeSettings
from rayserve_pulumi.config.serve import build_serve_config, bundled_text, resolve_serve_config

DOCKERFILE = bundled_text("Dockerfile")


def test_the_validator_runs_from_the_images_layout_without_pulumi(tmp_path):
    """The image's copy of the package (IMAGE_PATHS) validates a Serve config on its own: what the VM head's
    sync runs in the head container before applying a config."""
    root = tmp_path / "rayserve_pulumi"
    for path in image_files():
        dest = root / path.relative_to(package_dir())
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    probe = ("import runpy, sys; sys.argv = ['serve_check', sys.argv[1]]\n"
             "try:\n    runpy.run_module('rayserve_pulumi.config.serve_check', run_name='__main__')\n"
             "except SystemExit as e:\n    print('exit', e.code, sorted(m for m in sys.modules if m.split('.')[0] == 'pulumi'))")
    config = root / "serve_apps" / "serve_config.yaml"
    ok = subprocess.run([sys.executable, "-c", probe, str(config)], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
                        capture_output=True, text=True, timeout=300)
    assert ok.stdout.strip().splitlines()[-1] == "exit 0 []", ok.stderr[-2000:]
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("import_path: rayserve_pulumi.serve_apps.fruit:app", "import_path: os:system"))
    refused = subprocess.run([sys.executable, "-c", probe, str(bad)], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
                             capture_output=True, text=True, timeout=300)
    lines = refused.stdout.strip().splitlines()
    assert lines[-1] == "exit 1 []" and lines[0].startswith("serve config applications[fruit].import_path:"), refused.stdout


def test_every_deployment_has_check_health():
    from ray.serve.deployment import Deployment

    import rayserve_pulumi.serve_apps.calc as calc
    import rayserve_pulumi.serve_apps.fruit as fruit
    import rayserve_pulumi.serve_apps.summarize_translate as text

    deployments = [v for m in (fruit, calc, text) for v in vars(m).values() if isinstance(v, Deployment)]
    assert len(deployments) == 9
    for dep in deployments:
        assert callable(getattr(dep.func_or_class, "check_health", None)), dep.name


def test_config_lists_three_apps_with_user_configs():
    config = build_serve_config(ServeSettings())
    assert [(a["name"], a["route_prefix"]) for a in config["applications"]] == [
        ("fruit", "/fruit"), ("calc", "/calc"), ("summarize_translate", "/summarize_translate")]
    assert all("runtime_env" not in a for a in config["applications"])


def test_override_to_autoscaling_drops_the_fixed_replica_count():
    settings = ServeSettings(overrides={"fruit": {"FruitMarket": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4}}}})
    market = resolve_serve_config(settings)[0]["applications"][0]["deployments"][0]
    assert "num_replicas" not in market and market["autoscaling_config"]["max_replicas"] == 4


def test_models_resolve_from_a_directory_the_models_folder_or_the_hub(tmp_path, monkeypatch):
    from rayserve_pulumi.serve_apps.seq2seq import MODELS_ENV, resolve

    (tmp_path / "tiny-t5").mkdir()
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert resolve("tiny-t5") == str(tmp_path / "tiny-t5")
    assert resolve(str(tmp_path / "tiny-t5")) == str(tmp_path / "tiny-t5")
    assert resolve("t5-small") == "t5-small"  # a hub id, cached in HF_HOME
    with pytest.raises(FileNotFoundError):
        resolve("/no/such/dir")  # a path is never sent to the hub


def test_the_ml_extra_and_the_image_share_one_list_of_requirements_installed_with_the_lock():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    wanted = [r for r in bundled_text("requirements.txt").splitlines() if r and not r.startswith("#")]
    extra = [Requirement(r.split(";")[0]) for r in requires("rayserve-pulumi") if 'extra == "ml"' in r]
    assert sorted(map(str, map(Requirement, wanted))) == sorted(map(str, extra))
    assert any(w.startswith("torch") for w in wanted)
    constrained = re.findall(r"pip install [^\n]*?-c \$\{APP_HOME\}/rayserve_pulumi/constraints\.txt", DOCKERFILE)
    assert len(constrained) == 2, constrained  # torch from its index, then the rest: both at the lock's versions


def test_dockerfile_bakes_apps_into_a_pinned_ray_260_image():
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert base == "rayproject/ray:2.60.0-py311-cpu"
    copied = [src for line in re.findall(r"^COPY --chown=ray:users (.+) \$\{APP_HOME\}/rayserve_pulumi/\S*$", DOCKERFILE, re.M)
              for src in line.split()]
    assert sorted(copied) == sorted(IMAGE_PATHS)  # the image holds what ServeImage hashes into its tag
    assert "ENV PYTHONPATH=${APP_HOME}" in DOCKERFILE
    assert ('python -c "import rayserve_pulumi.serve_apps.fruit, rayserve_pulumi.serve_apps.calc, '
            'rayserve_pulumi.serve_apps.summarize_translate"') in DOCKERFILE
    assert "constraints.txt" in IMAGE_PATHS  # a new lock is a new image tag
