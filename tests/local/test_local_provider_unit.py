"""The local provider without Ray: Pulumi can serialise it, and its diff decides update vs replace."""
from __future__ import annotations

import base64
import json

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.config import build_serve_config

PROPS = provider_inputs(LocalSettings(), build_serve_config(ServeSettings(applications=["fruit"])), "/nonexistent/run")


def test_pulumi_can_serialise_and_restore_the_provider():
    restored = dill.loads(base64.b64decode(serialize_provider(LocalServeProvider())))
    assert isinstance(restored, LocalServeProvider)
    assert restored.diff("id", PROPS, PROPS).changes is False


@pytest.fixture
def no_engine(monkeypatch):
    """Progress lines on stderr, as without a Pulumi engine (an earlier test in this process may have set one)."""
    from pulumi.runtime import settings

    monkeypatch.setattr(settings, "get_engine", lambda: None)


def test_config_change_is_an_in_place_update(capsys, no_engine):
    config = json.loads(PROPS["serve_config_json"])
    config["applications"][0]["deployments"][1]["user_config"] = {"price": 9}
    diff = LocalServeProvider().diff("id", PROPS, {**PROPS, "serve_config_json": json.dumps(config)})
    assert diff.changes is True and diff.replaces == []
    # the rollout plan is in the preview's output (stderr here: no engine)
    assert "plan: fruit/MangoStand: in place (reconfigure) (user_config), peak +0 replicas" in capsys.readouterr().err


def test_the_plan_of_a_code_change_a_new_head_and_a_drift(capsys, no_engine):
    LocalServeProvider().diff("id", PROPS, {**PROPS, "code_version": "0123456789abcdef"})
    rolls = [line for line in capsys.readouterr().err.splitlines() if line.startswith("plan: ")]
    assert len(rolls) == 4 and all(": replica roll (code)" in line for line in rolls)  # every fruit deployment
    LocalServeProvider().diff("id", PROPS, {**PROPS, "num_cpus": 8})
    assert "plan: Ray head: new Ray head (num_cpus)" in capsys.readouterr().err
    LocalServeProvider().diff("id", {**PROPS, "config_hash": "drifted"}, PROPS)
    assert "plan: Serve: redeployed (the live applications drifted" in capsys.readouterr().err
    LocalServeProvider().diff("id", PROPS, PROPS)
    assert "plan:" not in capsys.readouterr().err  # nothing to do, nothing planned


def test_head_settings_change_replaces_the_ray_head():
    for key, value in [("dashboard_port", 9265), ("num_cpus", 8), ("auth_mode", "disabled"),
                       ("ray_env", {"RAY_SERVE_ENABLE_HA_PROXY": "1"})]:
        diff = LocalServeProvider().diff("id", PROPS, {**PROPS, key: value})
        assert diff.replaces == [key] and diff.delete_before_replace is True


def test_read_reports_a_ray_that_is_gone_with_an_empty_id():
    from bench.common import free_port

    gone = {**PROPS, "dashboard_port": free_port()}  # nothing listens there
    result = LocalServeProvider().read("local-ray", gone)
    assert result.id == "" and result.outs == {}


def test_a_drifted_read_makes_the_next_diff_an_update_in_place():
    diff = LocalServeProvider().diff("id", {**PROPS, "config_hash": "drifted"}, PROPS)
    assert diff.changes is True and diff.replaces == []


def test_progress_goes_to_pulumis_log_under_the_engine_and_to_stderr_otherwise(monkeypatch, capsys):
    import pulumi
    from pulumi.runtime import settings

    from rayserve_pulumi.local.lifecycle import report

    logged = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: logged.append(message))
    monkeypatch.setattr(settings, "get_engine", lambda: None)
    report("serve: fruit RUNNING")
    assert capsys.readouterr().err == "serve: fruit RUNNING\n" and logged == []
    monkeypatch.setattr(settings, "get_engine", lambda: object())
    report("serve: calc RUNNING")
    assert logged == ["serve: calc RUNNING"] and capsys.readouterr().err == ""


def test_the_no_cli_fallback_never_imports_pulumi(tmp_path):
    """`rayserve up` loads every module of its path and stops at a config error found by Ray's schema: neither
    Pulumi (0.13 s) nor Ray is among what it imported (the Serve config is checked in a child interpreter)."""
    import subprocess
    import sys

    import yaml

    (tmp_path / "serve.yaml").write_text(yaml.safe_dump({"applications": [
        {"name": "fruit", "route_prefix": "fruit", "import_path": "rayserve_pulumi.serve_apps.fruit:app"}]}))
    stack = tmp_path / "Pulumi.local.yaml"
    stack.write_text(yaml.safe_dump({"config": {"rayserve:platform": "local",
                                                "rayserve:serve": {"config_path": "serve.yaml"}}}))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "rayserve_pulumi.cli", "up",
                           str(stack), "--state", str(tmp_path / "state.json"), "--program-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 1 and len(errors) == 1 and "route_prefix" in errors[0], errors
    assert {"rayserve_pulumi.config.code_check", "rayserve_pulumi.local.lifecycle", "rayserve_pulumi.local.args"} <= imported
    assert not {m for m in imported if m.split(".")[0] in ("pulumi", "ray")}


def test_the_head_starts_up_to_num_cpus_workers_at_once():
    """Ray's own cap is min(cores, num_cpus): 2 on this machine, whatever local.num_cpus says. It is derived
    at the head's start, so a num_cpus change replaces the head for num_cpus alone."""
    from rayserve_pulumi.local.lifecycle import IPC_CONNECT_RETRY, head_env

    for num_cpus in (1, 4, 16):
        props = provider_inputs(LocalSettings(num_cpus=num_cpus), json.loads(PROPS["serve_config_json"]),
                                "/nonexistent/run")
        assert head_env(props) == {"RAY_worker_maximum_startup_concurrency": str(num_cpus), **IPC_CONNECT_RETRY,
                                   **props["ray_env"]}
    # the same budget as Ray's (10 attempts, 1000 ms apart), in finer steps
    assert int(IPC_CONNECT_RETRY["RAY_raylet_client_connect_timeout_milliseconds"]) * \
        int(IPC_CONNECT_RETRY["RAY_raylet_client_num_connect_attempts"]) == 10 * 1000
    diff = LocalServeProvider().diff("id", PROPS, {**PROPS, "num_cpus": 8})
    assert diff.replaces == ["num_cpus"]


def test_a_failed_update_puts_the_previous_config_back(monkeypatch):
    """Under `pulumi up`: the provider's update deploys the new inputs; when Serve ends DEPLOY_FAILED it deploys
    the old ones again and fails the update (Pulumi keeps the old state), saying what failed."""
    from rayserve_pulumi.local.lifecycle import LocalServe, RolledBack
    from rayserve_pulumi.node_agent.ray_ops import ServeDeployError

    news = {**PROPS, "code_version": "new"}
    deployed = []

    def deploy(self, props):
        deployed.append(props["code_version"])
        if props["code_version"] == "new":
            raise ServeDeployError("Serve could not deploy: fruit.MangoStand: RuntimeError: boom")
        return {**props, "config_hash": "old-hash"}

    monkeypatch.setattr(LocalServe, "_deploy", deploy)
    olds = {**PROPS, "code_version": "old", "config_hash": "old-hash"}
    with pytest.raises(RolledBack, match=r"RuntimeError: boom; rolled back: the previous config old-hash is serving"):
        LocalServeProvider().update("id", olds, news)
    assert deployed == ["new", "old"]
    deployed.clear()
    with pytest.raises(ServeDeployError):  # nothing applied before (no olds): nothing to put back
        LocalServe().update(news)
    assert deployed == ["new"]


def test_a_create_whose_head_fails_stops_the_prometheus_it_started(tmp_path, monkeypatch):
    """The head fails after Prometheus started (here at once: its GCS port is taken): create raises the head's
    cause, and the Prometheus it started is stopped, so a failed `up` leaves nothing running."""
    import socket

    from bench.common import free_local_ports, free_port
    from rayserve_pulumi.config import MetricsSettings
    from rayserve_pulumi.local import lifecycle
    from rayserve_pulumi.node_agent import procs

    monkeypatch.setattr(lifecycle, "report", lambda message: None)
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", free_port()))
        busy.listen()
        settings = LocalSettings(**{**free_local_ports(), "gcs_port": busy.getsockname()[1]})
        props = provider_inputs(settings, json.loads(PROPS["serve_config_json"]), str(tmp_path),
                                metrics=MetricsSettings(enabled=True, prometheus_port=free_port()))
        pid_file, started, spawn_head = lifecycle.prometheus_pid_file(props), [], lifecycle.spawn_head

        def spawn_noting_prometheus(*args):
            started.append(procs.read(pid_file))
            spawn_head(*args)

        monkeypatch.setattr(lifecycle, "spawn_head", spawn_noting_prometheus)
        try:
            with pytest.raises(RuntimeError, match=rf"gcs_port {settings.gcs_port} already in use"):
                lifecycle.LocalServe().create(props)
            assert started and started[0] and started[0]["sid"]  # Prometheus ran when the head was started
            assert not procs.members(started[0]["sid"]) and not procs.running(pid_file)
        finally:
            procs.stop(pid_file)  # where create left it running
