"""`rayserve validate` and `rayserve render` on the stacks in stacks/ (in-process, no cloud, no Pulumi CLI)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi import cli
from rayserve_pulumi.config.sources import read_stack_file
from tests.helpers import ROOT, stand_in_commands
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
    secrets = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Secret"]
    assert secrets and all(set(s["stringData"].values()) == {"(secret)"} and s["stringData"] for s in secrets)
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


# ---- the command line as a tool: per-command help, --version, --json, --stack -------------------------------

def test_version_and_per_command_help(capsys):
    from rayserve_pulumi import __version__

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"rayserve {__version__}"
    for command, (_, detail) in cli.COMMANDS.items():
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert done.value.code == 0 and text.startswith(f"usage: rayserve {command} ")
        assert " ".join(detail.split())[:60] in text, command
        assert ("[--json]" in text) == (command in ("validate", "status")), command


def test_validate_json_is_one_object_valid_or_with_every_error(tmp_path, capsys):
    assert cli.main(["validate", str(STACKS / "Pulumi.vm.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True and out["platform"] == "vm" and out["applications"] == ["fruit", "calc"]
    bad = yaml.safe_load((STACKS / "Pulumi.local.yaml").read_text())
    bad["config"]["rayserve:local"] = {**bad["config"].get("rayserve:local", {}), "num_cpus": "four"}
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump(bad))
    assert cli.main(["validate", str(tmp_path / "Pulumi.bad.yaml"), "--json", "--program-dir", str(ROOT)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False and out["errors"] == ["rayserve:local.num_cpus: Input should be a valid integer "
                                                       "(got 'four')"]


def test_status_json_of_a_cluster_platform_names_its_commands(capsys):
    assert cli.main(["status", str(STACKS / "Pulumi.prod.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["platform"] == "eks" and any("get rayservice" in c for c in out["commands"])


def test_stack_by_name_without_a_pulumi_cli_reads_the_projects_stack_config_dir(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` here
    assert cli.main(["validate", "--stack", "vm", "--program-dir", str(ROOT)]) == 0
    assert capsys.readouterr().out.startswith(f"{ROOT / 'stacks' / 'Pulumi.vm.yaml'}: valid vm stack")
    assert cli.main(["validate", "--stack", "nope", "--program-dir", str(ROOT)]) == 1
    assert "Pulumi.nope.yaml" in capsys.readouterr().err
    assert cli.main(["validate"]) == 1
    assert capsys.readouterr().err.strip() == "rayserve: name the stack: a STACK_FILE or --stack NAME (one of the two)"


FAKE_PULUMI = """#!{python}
import json, sys
open({log!r}, "w").write(json.dumps(sys.argv[1:]))
if "--stack" in sys.argv and sys.argv[sys.argv.index("--stack") + 1] == "missing":
    sys.stderr.write("error: no stack named 'missing' found\\n"); sys.exit(255)
print(json.dumps({entries}))
"""


def _fake_pulumi(tmp_path: Path, entries: dict) -> Path:
    """A `pulumi` on PATH that prints `pulumi config --json` as the CLI does (there is no Pulumi CLI here)."""
    log = tmp_path / "argv.json"
    stand_in_commands(tmp_path / "bin", {"pulumi": FAKE_PULUMI.format(python=sys.executable, log=str(log),
                                                                       entries=repr(entries))})
    return log


def test_stack_by_name_with_a_pulumi_cli_validates_what_it_resolves(monkeypatch, tmp_path, capsys):
    """The values `pulumi config --json` prints (the stack file merged with its ESC environments, secrets
    shown) are what is validated: here a float as Pulumi stores it and a key only the environment sets."""
    values = read_stack_file(STACKS / "Pulumi.local.yaml")
    entries = {f"rayserve:{k}": {"value": json.dumps(v) if not isinstance(v, str) else v, "secret": False,
                                 **({"objectValue": v} if isinstance(v, (dict, list)) else {})}
               for k, v in values.items()}
    entries["rayserve:local"] = {"value": "...", "objectValue": {**values.get("local", {}), "deploy_timeout_s": "1.5"},
                                 "secret": False}
    entries["aws:region"] = {"value": "us-east-1", "secret": False}  # another namespace: not ours
    log = _fake_pulumi(tmp_path, entries)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert cli.main(["validate", "--stack", "org/rayserve/local", "--program-dir", str(ROOT)]) == 0, \
        capsys.readouterr().err
    assert capsys.readouterr().out.startswith("stack org/rayserve/local: valid local stack")
    assert json.loads(log.read_text()) == ["config", "--json", "--show-secrets", "--stack", "org/rayserve/local",
                                           "--cwd", str(ROOT)]
    entries["rayserve:local"]["objectValue"]["num_cpus"] = "four"
    _fake_pulumi(tmp_path, entries)
    assert cli.main(["validate", "--stack", "dev2", "--program-dir", str(ROOT)]) == 1
    assert capsys.readouterr().err.strip() == ("stack dev2: rayserve:local.num_cpus: Input should be a valid "
                                               "integer (got 'four')")
    assert cli.main(["validate", "--stack", "missing", "--program-dir", str(ROOT)]) == 1
    assert capsys.readouterr().err.strip() == ("stack missing: `pulumi config --json` exited 255: error: no stack "
                                               "named 'missing' found")


def test_render_is_reviewable_whole_in_the_stacks_region_with_integers_and_valid_secrets(capsys):
    """The old render: no AWS resource, `port: 6379.0`, a Secret's whole data map as one "(secret)" (an invalid
    object), and a us-east-1 stack rendered with us-west-2 addresses."""
    import kubernetes_validate

    text = (cli.main(["render", str(STACKS / "Pulumi.vm.yaml")]), capsys.readouterr().out)[1]
    assert "us-east-1" in text and "us-west-2" not in text  # the vm stack's aws:region
    assert "# aws:ec2/securityGroup:SecurityGroup" in text and "# aws:lb/loadBalancer:LoadBalancer" in text
    docs = _render("prod", capsys)
    assert not [line for line in yaml.safe_dump_all(docs).splitlines() if line.rstrip().endswith(".0")
                and line.split(":")[-1].strip().replace(".", "", 1).isdigit()]  # whole numbers as integers
    manifests = [d for d in docs if isinstance(d, dict) and d.get("apiVersion") == "v1" and d.get("kind") == "Secret"]
    for secret in manifests:
        kubernetes_validate.validate(secret, "1.33", strict=True)  # valid objects, values redacted one by one
    efs = next(d for d in docs if isinstance(d, dict) and d.get("description") == "NFS from cluster nodes only")
    assert efs["ingress"][0]["fromPort"] == 2049 and isinstance(efs["ingress"][0]["fromPort"], int)
