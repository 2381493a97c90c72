"""`rayserve validate` and `rayserve render` on the stacks in stacks/ (in-process, no cloud, no Pulumi CLI)."""
from __future__ import annotations

import pytest
import yaml

from rayserve_pulumi import cli
from tests.pulumi_harness import STACKS, all_stacks


@pytest.mark.parametrize("stack", all_stacks())
def test_validate_accepts_every_stack_with_a_one_line_summary(stack, capsys):
    assert cli.main(["validate", str(STACKS / f"Pulumi.{stack}.yaml")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "valid" in out[0]


def _render(stack: str, capsys) -> list:
    assert cli.main(["render", str(STACKS / f"Pulumi.{stack}.yaml")]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def test_render_eks_prints_the_manifests_with_secrets_as_references(capsys):
    docs = _render("prod", capsys)
    kinds = [d.get("kind") for d in docs if isinstance(d, dict)]
    for kind in ("Namespace", "Secret", "StatefulSet", "Service", "PersistentVolumeClaim", "StorageClass", "RayService"):
        assert kind in kinds, kind
    secret = next(d for d in docs if isinstance(d, dict) and d.get("kind") == "Secret")
    assert secret["stringData"] == "(secret)"
    rayservice = next(d for d in docs if isinstance(d, dict) and d.get("kind") == "RayService")
    assert rayservice["apiVersion"] == "ray.io/v1" and "serveConfigV2" in rayservice["spec"]
    assert any(isinstance(d, dict) and "resources" in d and "image" in d for d in docs)  # the operator's Helm values


def test_render_vm_prints_user_data_and_the_serve_config(capsys):
    docs = _render("vm", capsys)
    assert any(isinstance(d, str) and "python3 -m rayserve_pulumi.node_agent head" in d for d in docs)
    assert any(isinstance(d, str) and "python3 -m rayserve_pulumi.node_agent worker" in d for d in docs)
    serve = next(d for d in docs if isinstance(d, dict) and "applications" in d)
    assert [a["name"] for a in serve["applications"]] == ["fruit", "calc"]


def test_render_local_prints_the_head_settings_and_the_serve_config(capsys):
    head, serve = _render("local", capsys)
    assert head["num_cpus"] == 4 and head["dashboard_port"] == 8265
    assert [a["name"] for a in serve["applications"]] == ["fruit", "calc", "summarize_translate"]


def test_render_validates_the_stack_once(monkeypatch, capsys):
    """`rayserve render`: one validation per run, the program reusing what the command validated."""
    from rayserve_pulumi.config import validate as validate_module

    runs = []
    real = validate_module.validate_resolved
    monkeypatch.setattr(validate_module, "validate_resolved", lambda *a, **k: runs.append(1) or real(*a, **k))
    assert cli.main(["render", str(STACKS / "Pulumi.vm.yaml")]) == 0
    assert "head user data" in capsys.readouterr().out and runs == [1]
