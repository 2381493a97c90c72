"""The rollout plan (`rayserve render --since OLD_STACK_FILE`): for each change, in place, a replica roll, a new
head or cluster, or an incremental upgrade, with the peak extra replicas or pods, on every platform. Serve's side
follows the update type Serve itself gives each deployment option (read from the installed Ray)."""
from __future__ import annotations

import copy

import pytest
import yaml

from rayserve_pulumi import cli
from rayserve_pulumi.config.serve import bundled_text
from rayserve_pulumi.rollout import plan
from tests.pulumi_harness import ROOT

SERVE = yaml.safe_load(bundled_text("serve_config.yaml"))


def changed(mutate) -> dict:
    new = copy.deepcopy(SERVE)
    mutate(new)
    return new


def deployment(config: dict, app: str, name: str) -> dict:
    found = next(a for a in config["applications"] if a["name"] == app)
    return next(d for d in found["deployments"] if d["name"] == name)


def test_the_update_types_are_serves_own():
    """The copy used where Ray is not importable is what the installed Ray says (a Ray bump that moves an option
    fails here)."""
    assert plan.update_types() == plan._RAY_UPDATE_TYPES


def test_user_config_is_reconfigured_in_place_and_code_rolls_with_the_surge():
    new = changed(lambda c: deployment(c, "fruit", "MangoStand").update(user_config={"price": 9}))
    assert [c.line() for c in plan.serve_changes(SERVE, new)] == [
        "fruit/MangoStand: in place (reconfigure) (user_config), peak +0 replicas"]
    new = changed(lambda c: deployment(c, "fruit", "MangoStand").update(ray_actor_options={"num_cpus": 0.5}))
    [roll] = plan.serve_changes(SERVE, new)
    assert (roll.kind, roll.keys, roll.peak_extra) == (plan.REPLICA_ROLL, ("ray_actor_options",), 1)  # 100 % of 1


def test_without_a_surge_the_plan_says_capacity_dips():
    def mutate(c):
        d = deployment(c, "calc", "Adder")
        d.pop("max_surge_percent")
        d.update(num_replicas=5, ray_actor_options={"num_cpus": 0.2})
    [roll] = plan.serve_changes(changed(lambda c: deployment(c, "calc", "Adder").update(num_replicas=5)), changed(mutate))
    assert roll.peak_extra == 0 and "stops 1 of 5 replica(s) before their replacements start: capacity dips to 4" \
        in roll.note  # Serve's default rolling_update_percentage, 20 %


def test_an_app_level_code_change_rolls_every_deployment_and_a_route_change_is_in_place():
    new = changed(lambda c: c["applications"][1].update(import_path="mycalc:app"))
    rolls = plan.serve_changes(SERVE, new)
    assert {c.subject for c in rolls} == {"calc/Router", "calc/Adder", "calc/Multiplier"}
    assert all(c.kind == plan.REPLICA_ROLL and c.keys[0] == "import_path" for c in rolls)
    new = changed(lambda c: c["applications"][1].update(route_prefix="/calculator"))
    assert [(c.subject, c.kind) for c in plan.serve_changes(SERVE, new)] == [("application calc", plan.IN_PLACE)]
    coded = plan.serve_changes(SERVE, SERVE, code_changed=True)
    assert len(coded) == sum(len(a["deployments"]) for a in SERVE["applications"])
    assert {c.kind for c in coded} == {plan.REPLICA_ROLL}


def test_added_and_removed_applications_and_more_replicas():
    new = changed(lambda c: c["applications"].pop(2))
    assert [(c.subject, c.kind) for c in plan.serve_changes(new, SERVE)] == [("application summarize_translate", plan.ADDED)]
    assert [(c.subject, c.kind) for c in plan.serve_changes(SERVE, new)] == [("application summarize_translate", plan.REMOVED)]
    more = changed(lambda c: deployment(c, "fruit", "FruitMarket").update(num_replicas=3))
    [scale] = plan.serve_changes(SERVE, more)
    assert (scale.kind, scale.peak_extra) == (plan.IN_PLACE, 2)


def _stack(tmp_path, name: str, stack: str, edit) -> str:
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    edit(doc["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _plan(capsys, new: str, old: str) -> dict:
    assert cli.main(["render", new, "--since", old, "--program-dir", str(ROOT)]) == 0
    return next(yaml.safe_load_all(capsys.readouterr().out))


def test_render_since_on_the_local_platform(tmp_path, capsys):
    old = str(ROOT / "stacks" / "Pulumi.local.yaml")
    same = _plan(capsys, old, old)
    assert same == {"changes": [], "summary": "nothing changes"}
    german = _stack(tmp_path, "german", "local", lambda c: c["rayserve:serve"]["overrides"]["summarize_translate"]
                    ["Translator"]["user_config"].update(language="german"))
    assert _plan(capsys, german, old)["changes"] == [
        "summarize_translate/Translator: in place (reconfigure) (user_config), peak +0 replicas"]
    cpus = _stack(tmp_path, "cpus", "local", lambda c: c["rayserve:local"].update(num_cpus=6))
    [head] = _plan(capsys, cpus, old)["changes"]
    assert head.startswith("Ray head: new Ray head (num_cpus)")


def test_render_since_on_kuberay_a_new_image_is_a_new_cluster_or_an_incremental_upgrade(tmp_path, capsys):
    old = str(ROOT / "stacks" / "Pulumi.kubernetes.yaml")

    def image(c):
        c["rayserve:image"] = {"uri": "registry.example.com/team/rayserve-apps:v1.4.3"}
    out = _plan(capsys, _stack(tmp_path, "img", "kubernetes", image), old)
    assert out["changes"][0].startswith("cluster: new cluster (headGroupSpec.template.spec.containers[0].image")
    workers = 1 + sum(g.get("replicas", 1) for g in
                      yaml.safe_load(open(old))["config"]["rayserve:ray_service"]["worker_groups"])
    assert out["peak_extra"] == {"pods": workers}

    def incremental(c):
        image(c)
        c["rayserve:ray_service"].update(upgrade_strategy="NewClusterWithIncrementalUpgrade",
                                         incremental_upgrade={"gateway_class": "eg", "max_surge_percent": 50,
                                                              "step_size_percent": 10})
    [step] = _plan(capsys, _stack(tmp_path, "inc", "kubernetes", incremental), old)["changes"]
    assert step.startswith("cluster: incremental upgrade") and "10 % of traffic every 30 s" in step
    assert "gated: errors above 0.01, p99 over 2x the serving cluster's, or not RUNNING within 300 s" in step
    serve_only = _stack(tmp_path, "uc", "kubernetes", lambda c: c["rayserve:serve"].setdefault("overrides", {})
                        .setdefault("calc", {}).update(Adder={"user_config": {"increment": 4}}))
    assert _plan(capsys, serve_only, old)["changes"] == ["calc/Adder: in place (reconfigure) (user_config), peak +0 replicas"]


def test_render_since_on_vms_what_replaces_the_head_is_a_new_cluster(tmp_path, capsys):
    old = str(ROOT / "stacks" / "Pulumi.vm.yaml")
    doc = yaml.safe_load(open(old))["config"]

    def vm(**changed):
        return lambda c: c.update({"rayserve:vm": {**doc["rayserve:vm"], **changed}})
    [bigger] = _plan(capsys, _stack(tmp_path, "vm2", "vm", vm(head_instance_type="m6i.2xlarge")), old)["changes"]
    assert bigger.startswith("Ray head: new Ray head (vm.head_instance_type), peak +0 instances; the head stops")
    [image] = _plan(capsys, _stack(tmp_path, "vm3", "vm", lambda c: c["rayserve:image"].update(tag="v2")),
                    old)["changes"]
    # the new head and a new group of the stack's 2 workers beside the serving ones
    assert image.startswith("Ray cluster: new cluster (image), peak +3 instances; a new head and checkpoint volume")
    [ami] = _plan(capsys, _stack(tmp_path, "vm4", "vm", vm(ami_id="ami-0fedcba9876543210",
                                                           worker_instance_type="m6i.4xlarge")), old)["changes"]
    assert ami.startswith("Ray cluster: new cluster (vm.ami_id)")  # the new cluster's workers are of the new type
    [workers] = _plan(capsys, _stack(tmp_path, "vm6", "vm", vm(worker_instance_type="m6i.4xlarge")), old)["changes"]
    assert workers.startswith("Ray workers: replica roll (vm.worker_instance_type), peak +0 instances; the workers roll")
    [agent] = _plan(capsys, _stack(tmp_path, "vm5", "vm", vm(config_poll_seconds=60)), old)["changes"]
    assert agent.startswith("Ray cluster: new cluster (the head's node agent settings)")


def test_a_plan_across_platforms_is_one_line(tmp_path, capsys):
    code = cli.main(["render", str(ROOT / "stacks" / "Pulumi.kubernetes.yaml"), "--since",
                     str(ROOT / "stacks" / "Pulumi.local.yaml"), "--program-dir", str(ROOT)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--since: a local stack" in err, err


def test_on_eks_moving_a_group_to_another_node_group_is_a_new_cluster(tmp_path, capsys):
    old = str(ROOT / "stacks" / "Pulumi.dev.yaml")
    doc = yaml.safe_load(open(old))["config"]

    def move(c):
        c["rayserve:eks"]["node_groups"].append({**c["rayserve:eks"]["node_groups"][0], "name": "cpu2"})
        c["rayserve:ray_service"]["worker_groups"][0]["node_group"] = "cpu2"
    assert doc["rayserve:ray_service"]["worker_groups"][0]["node_group"] != "cpu2"
    [change] = _plan(capsys, _stack(tmp_path, "moved", "dev", move), old)["changes"]
    assert change.startswith("cluster: new cluster (workerGroupSpecs[0].template.spec.nodeSelector")
