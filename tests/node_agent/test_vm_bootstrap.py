"""The node agent, as shipped in user data, run for real in local mode (the venv's Ray, no docker).

The agent runs from the extracted archive (`python -m rayserve_pulumi.node_agent` with the archive's
folder as working directory, as on EC2), not from the installed package."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rayserve_pulumi.aws.vm import user_data as vm_user_data
from rayserve_pulumi.node_agent import bootstrap as vm_bootstrap
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.config import ServeSettings
from rayserve_pulumi.config import build_serve_config
from rayserve_pulumi.constants import DASHBOARD_AGENT_LISTEN_PORT, METRICS_PORT, RUNTIME_ENV_AGENT_PORT
from tests.helpers import agent_port_options, free_port, post, ray_answers, replica_pids, slow_agents_env

pytestmark = pytest.mark.ray


def unpack_user_data_agent(dest):
    """Extract the archive embedded in rendered user data, exactly as cloud-init would."""
    script = vm_user_data.decode(vm_user_data.encode(vm_user_data.render("head", ["--mode", "docker"])))  # cloud-init gunzips
    unpack = vm_user_data.unpack_command(vm_user_data.INSTALL_DIR)
    assert unpack in script.splitlines()
    Path(dest).mkdir(parents=True, exist_ok=True)
    line = unpack.replace(f" {vm_user_data.INSTALL_DIR}", f" {shlex.quote(str(dest))}")
    line = line.replace("python3 ", f"{sys.executable} ", 1)  # this interpreter, as the node's python3
    subprocess.run(["bash", "-c", f"set -euo pipefail; {line}"], check=True, timeout=60)
    return dest


def test_the_shipped_archive_is_the_standard_library_agent_and_runs_from_its_folder(tmp_path):
    dest = unpack_user_data_agent(tmp_path)
    shipped = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.py"))
    assert shipped == sorted(f"rayserve_pulumi/{f}" for f in vm_user_data.AGENT_FILES)
    probe = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, ''); "
                            "import rayserve_pulumi.node_agent.bootstrap as b; print(b.__file__); "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'ray', 'pydantic', 'yaml')))"],
                           cwd=dest, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    where, third_party = probe.stdout.splitlines()
    assert where.startswith(str(dest)) and third_party == "[]"


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    """Head (plus one worker) started by the shipped script; stopped by it in teardown."""
    base = tmp_path_factory.mktemp("vm")
    agent_dir = unpack_user_data_agent(base / "opt")
    http_port, dash, gcs, prom = free_port(), free_port(), free_port(), free_port()
    config_file = base / "serve-config.json"
    config_file.write_text(json.dumps(build_serve_config(ServeSettings(applications=["fruit", "calc"], http_port=http_port))))
    common = ["--mode", "local", "--state-dir", str(base / "state"),
              "--dashboard-port", str(dash), "--timeout", "300", "--prometheus-port", str(prom)]
    run = lambda *args: subprocess.run([sys.executable, "-m", vm_user_data.AGENT_MODULE, *args], cwd=agent_dir,  # noqa: E731
                                       capture_output=True, text=True, timeout=600)
    previous_token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(base / "state" / "auth_token")  # the cluster's token, for our REST calls
    try:
        # the head's autoscaler and dashboard export metrics on ports of this test's own (Ray's fixed defaults
        # are another parallel test's head's)
        metrics_ports = {"--autoscaler-metrics-port": free_port(), "--dashboard-metrics-port": free_port()}
        agents = agent_port_options()
        head = run("head", *common, "--config-file", str(config_file), "--gcs-port", str(gcs),
                   "--dashboard-host", "127.0.0.1", "--num-cpus", "2", "--metrics", "--scrape-interval", "2",
                   *[str(x) for pair in metrics_ports.items() for x in pair], *agents)
        assert head.returncode == 0, head.stderr[-3000:]
        yield {"run": run, "common": common, "agent_dir": agent_dir, "config_file": config_file,
               "dash": f"http://127.0.0.1:{dash}",
               "base": f"http://127.0.0.1:{http_port}", "gcs": gcs, "state": base / "state",
               "prometheus": f"http://127.0.0.1:{prom}", "metrics_ports": metrics_ports,
               "agent_ports": dict(zip(agents[::2], map(int, agents[1::2])))}
    finally:
        run("stop", *common)
        ray_ops.stop(base / "state" / "ray-head.pid")  # in case the agent could not: only this head's group
        if previous_token_path is None:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_TOKEN_PATH"] = previous_token_path


def test_head_boot_deploys_both_apps_that_answer_over_http(vm):
    apps = ray_ops.status(vm["dash"])["applications"]
    assert {apps["fruit"]["status"], apps["calc"]["status"]} == {"RUNNING"}
    assert post(vm["base"] + "/fruit", ["MANGO", 2]) == 6
    assert post(vm["base"] + "/calc", ["MUL", 3]) == "15 pizzas please!"
    assert (vm["state"] / vm_bootstrap.APPLIED_FILE).read_text() == ray_ops.config_hash(json.loads(vm["config_file"].read_text()))


def test_the_heads_agents_listen_on_the_ports_given_and_the_raylet_is_told_each(vm):
    """Told every agent's port, the raylet waits for none to publish one (a busy machine's agent may take over
    the 15 s it would wait)."""
    ports = vm["agent_ports"]
    assert ray_ops.taken_ports({flag: ("0.0.0.0", port) for flag, port in ports.items()}) == [
        f"{flag} {port}" for flag, port in ports.items()]  # each agent listens there
    session = procs.read(vm_bootstrap.node_pid_file(argparse.Namespace(state_dir=str(vm["state"])),
                                                    vm_bootstrap.HEAD_CONTAINER))["sid"]
    raylet = next(argv for argv in procs.commands(session).values() if argv and argv[0].endswith("/raylet"))
    assert {f"--dashboard_agent_listen_port={ports['--dashboard-agent-listen-port']}",
            f"--metrics_export_port={ports['--metrics-export-port']}",
            f"--metrics-agent-port={ports['--dashboard-agent-grpc-port']}",
            f"--runtime_env_agent_port={ports['--runtime-env-agent-port']}"} <= set(raylet)


def test_the_head_runs_prometheus_on_loopback_scraping_its_nodes_with_the_alert_rules(vm):
    import requests

    assert ray_ops.http_ok(vm["prometheus"] + "/-/ready")
    head = ray_ops.api_get(vm["dash"], "/api/prometheus_health")
    assert head.get("result") is True, head  # RAY_PROMETHEUS_HOST points the dashboard at it
    deadline = time.monotonic() + 180  # a state, waited for: the mock tests share the two cores
    while time.monotonic() < deadline:
        targets = requests.get(vm["prometheus"] + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            break
        time.sleep(1)
    assert targets and all(t["health"] == "up" for t in targets), [(t["scrapeUrl"], t["lastError"]) for t in targets]
    # through this head's own discovery file: another head on the machine (a parallel test) keeps its own
    own = vm_bootstrap.own_temp_dir(argparse.Namespace(mode="local", state_dir=str(vm["state"])))
    assert {t["discoveredLabels"]["__meta_filepath"] for t in targets} == {f"{own}/prom_metrics_service_discovery.json"}
    scraped = {int(t["discoveredLabels"]["__address__"].rsplit(":", 1)[1]) for t in targets}
    assert set(vm["metrics_ports"].values()) <= scraped  # the autoscaler's and the dashboard's, where we put them
    groups = requests.get(vm["prometheus"] + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert [len(g["rules"]) for g in groups if g["name"] == "rayserve"] == [5]


def test_docker_mode_prometheus_and_grafana_listen_on_loopback_only():
    import argparse

    args = argparse.Namespace(prometheus_port=9090, grafana_port=3000)
    prom = vm_bootstrap.prometheus_docker(args, Path("/mnt/ckpt/rayserve/prometheus"))
    assert "--web.listen-address=127.0.0.1:9090" in prom and "--network" in prom
    assert f"{vm_bootstrap.RAY_TMP_HOST}:/tmp/ray:ro" in prom and vm_bootstrap.PROMETHEUS_IMAGE in prom
    grafana = vm_bootstrap.grafana_docker(args)
    assert "GF_SERVER_HTTP_ADDR=127.0.0.1" in grafana and "GF_SERVER_HTTP_PORT=3000" in grafana
    assert "GF_PATHS_PROVISIONING=/tmp/ray/session_latest/metrics/grafana/provisioning" in grafana  # Ray's dashboards


def test_worker_joins_the_head_though_its_agents_take_longer_than_a_raylet_waits_for_one(vm, tmp_path):
    """The worker's agents take 20 s to start (as seen on a loaded two-core machine): told their ports, its
    raylet waits for none, where with ports Ray picked it gives up after 15 s ("The current node timed out
    during startup"), at every attempt."""
    agents = agent_port_options()
    result = subprocess.run([sys.executable, "-m", vm_user_data.AGENT_MODULE, "worker", *vm["common"],
                             "--head-address", f"127.0.0.1:{vm['gcs']}", "--num-cpus", "1", *agents],
                            cwd=vm["agent_dir"], env={**os.environ, **slow_agents_env(tmp_path / "slow", 20)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "timed out during startup" not in result.stderr  # started at the first attempt
    nodes = ray_ops.api_get(vm["dash"], "/nodes?view=summary")["data"]["summary"]
    alive = [n for n in nodes if n["raylet"]["state"] == "ALIVE"]
    assert len(alive) == 2
    wanted = {flag: ("0.0.0.0", int(port)) for flag, port in zip(agents[::2], agents[1::2])}
    deadline = time.monotonic() + 120  # its agents come up after all, on the ports given (the next tests use them)
    while len(ray_ops.taken_ports(wanted)) < len(wanted) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(ray_ops.taken_ports(wanted)) == len(wanted), ray_ops.taken_ports(wanted)


def test_sync_redeploys_a_changed_config_in_place_and_only_then(vm):
    assert vm["run"]("sync", *vm["common"], "--config-file", str(vm["config_file"])).stdout.strip() == "unchanged"
    pids = replica_pids(vm["dash"], "fruit", "MangoStand")
    config = json.loads(vm["config_file"].read_text())
    mango = next(d for d in config["applications"][0]["deployments"] if d["name"] == "MangoStand")
    mango["user_config"] = {"price": 5}
    vm["config_file"].write_text(json.dumps(config))
    result = vm["run"]("sync", *vm["common"], "--config-file", str(vm["config_file"]))
    assert result.stdout.strip() == "redeployed", result.stderr[-3000:]
    assert post(vm["base"] + "/fruit", ["MANGO", 2]) == 10
    assert replica_pids(vm["dash"], "fruit", "MangoStand") == pids


@pytest.mark.parametrize("break_it,why", [
    (lambda c: c["applications"][0]["deployments"][1].update(num_replicas="two"), "num_replicas"),
    (lambda c: c["applications"][0].update(import_path="os:system"), "import_path"),
    (lambda c: c.update(http_options={"port": 8265}), "http_options.port: 8265 collides with the Ray dashboard port"),
], ids=["wrong type", "code outside the bundled apps", "a Ray port"])
def test_sync_refuses_an_invalid_config_and_keeps_the_last_good_one(vm, break_it, why):
    good = vm["config_file"].read_text()
    applied = (vm["state"] / vm_bootstrap.APPLIED_FILE).read_text()
    bad = json.loads(good)
    break_it(bad)
    vm["config_file"].write_text(json.dumps(bad))
    try:
        result = vm["run"]("sync", *vm["common"], "--config-file", str(vm["config_file"]))
    finally:
        vm["config_file"].write_text(good)
    assert result.returncode == 1 and result.stdout.strip() == "refused"
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"sync: refused Serve config {ray_ops.config_hash(bad)}: serve config ") and why in line, line
    assert line.endswith(f"keeping the applied config {applied}")
    assert (vm["state"] / vm_bootstrap.APPLIED_FILE).read_text() == applied
    assert post(vm["base"] + "/fruit", ["MANGO", 2]) == 10  # still the last good config (price 5)


def test_sync_rolls_back_a_config_that_fails_to_deploy(vm):
    """Valid, but its replicas cannot start (the text app asked for a model that is not there): the last
    config that was RUNNING is put back at once, and sync says so and exits 1."""
    good = vm["config_file"].read_text()
    bad = json.loads(good)
    text_app = build_serve_config(ServeSettings(applications=["summarize_translate"]))["applications"][0]
    for dep in text_app["deployments"]:
        dep["user_config"] = {**dep.get("user_config", {}), "model": "/nonexistent/model"}
    bad["applications"].append(text_app)
    vm["config_file"].write_text(json.dumps(bad))
    try:
        result = vm["run"]("sync", *vm["common"], "--config-file", str(vm["config_file"]))
    finally:
        vm["config_file"].write_text(good)
    assert result.returncode == 1 and result.stdout.strip() == "rolled back", result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"sync: Serve config {ray_ops.config_hash(bad)} failed to deploy: ") and "OSError" in line
    assert line.endswith(f"rolled back: the previous config {ray_ops.config_hash(json.loads(good))} is serving")
    deadline = time.monotonic() + 120  # Serve deletes the app the rolled-back config added: wait for that state
    while sorted(ray_ops.applications(vm["dash"])) != ["calc", "fruit"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(ray_ops.applications(vm["dash"])) == ["calc", "fruit"]
    assert post(vm["base"] + "/fruit", ["MANGO", 2]) == 10
    # the failed config is not retried every poll; the good one, unchanged, is redeployed as it is live again
    assert vm["run"]("sync", *vm["common"], "--config-file", str(vm["config_file"])).stdout.strip() == "redeployed"


def test_stop_stops_ray(vm):
    own = vm_bootstrap.own_temp_dir(argparse.Namespace(mode="local", state_dir=str(vm["state"])))
    assert Path(own, "session_latest").exists()  # the head's sessions, before the stop
    vm["run"]("stop", *vm["common"])
    assert not ray_answers(vm["dash"])
    assert not Path(own).exists()  # its own Ray temp dir removed with it
    assert not ray_ops.http_ok(vm["prometheus"] + "/-/ready")  # Prometheus stopped by its PID file


def test_systemd_units_poll_the_config_with_the_head_arguments():
    units = vm_bootstrap.systemd_units("/opt/rayserve", ["--config-ssm", "/x/serve-config"], 30)
    service, timer = units["rayserve-sync.service"], units["rayserve-sync.timer"]
    assert "ExecStart=/usr/bin/python3 -m rayserve_pulumi.node_agent sync --config-ssm /x/serve-config" in service
    assert "WorkingDirectory=/opt/rayserve" in service and "Environment=PYTHONPATH=/opt/rayserve" in service
    assert "OnUnitActiveSec=30" in timer and "WantedBy=timers.target" in timer


def test_docker_mode_runs_ray_from_the_bundled_image_on_the_host_network():
    cmd = vm_bootstrap.docker_ray("ray-head", "repo/apps@sha256:abc", ["start", "--head"], "/state/ray-head.env",
                                  "/mnt/ckpt", "/state/container-auth-token")
    assert cmd[:3] == ["docker", "run", "-d"] and "--network" in cmd and "host" in cmd
    assert "/state/container-auth-token:/home/ray/.ray/auth_token:ro" in cmd
    image = cmd.index("repo/apps@sha256:abc")
    assert cmd[image + 1:] == ["python", "-c", ray_ops.RAY_LAUNCHER, "start", "--head", "--block"]
    assert cmd[cmd.index("--env-file") + 1] == "/state/ray-head.env"  # environment (and secrets) from a 0600 file
    assert "/mnt/ckpt/models:/home/ray/model-cache" in cmd and "-e" not in cmd


def test_the_launcher_hands_ray_the_redis_password_from_the_environment_only(tmp_path):
    """`python -c RAY_LAUNCHER <args>` runs Ray's CLI with --redis-password appended from the environment."""
    fake = tmp_path / "ray" / "scripts"
    fake.mkdir(parents=True)
    (tmp_path / "ray" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "scripts.py").write_text("import os, sys\ndef main():\n    print(sys.argv)\n"
                                     f"    print({ray_ops.REDIS_PASSWORD_ENV!r} in os.environ)\n")
    env = {"PYTHONPATH": str(tmp_path), ray_ops.REDIS_PASSWORD_ENV: "s3cret"}
    proc = subprocess.run(ray_ops.ray_command(sys.executable, ["start", "--head"]), env=env, capture_output=True,
                          text=True, timeout=30)
    argv, leaked = proc.stdout.splitlines()
    assert argv == str(["ray", "start", "--head", "--redis-password", "s3cret", "--redis-username", "default"])
    assert leaked == "False"  # popped: Ray's children do not inherit it
    assert "s3cret" not in " ".join(ray_ops.ray_command(sys.executable, ["start", "--head"]))


def test_the_launcher_tells_the_raylet_the_dashboard_agents_port_when_one_is_given(tmp_path):
    """Ray hands `--dashboard-agent-listen-port` to the agent alone; the launcher adds it to the raylet's command
    (Ray's private `services.start_ray_process`, faked here as Ray 2.60 has it), and to no other process's."""
    private, scripts = tmp_path / "ray" / "_private", tmp_path / "ray" / "scripts"
    for folder in (private, scripts):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (tmp_path / "ray" / "__init__.py").write_text("")
    (private / "ray_constants.py").write_text("PROCESS_TYPE_RAYLET = 'raylet'\n")
    (private / "services.py").write_text("def start_ray_process(command, process_type, *rest, **options):\n"
                                         "    print(process_type, command)\n")
    (scripts / "scripts.py").write_text("from ray._private import services\ndef main():\n"
                                        "    services.start_ray_process(['gcs_server'], 'gcs_server')\n"
                                        "    services.start_ray_process(['raylet', '--x=1'], 'raylet', 'more', a=1)\n")

    def launched(*args: str) -> list[str]:
        proc = subprocess.run(ray_ops.ray_command(sys.executable, ["start", "--head", *args]),
                              env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    assert launched("--dashboard-agent-listen-port=52399") == [
        "gcs_server ['gcs_server']", "raylet ['raylet', '--x=1', '--dashboard_agent_listen_port=52399']"]
    assert launched() == ["gcs_server ['gcs_server']", "raylet ['raylet', '--x=1']"]  # none given: Ray's way


def test_every_node_gives_its_agents_the_ports_of_its_command_line():
    head = vm_bootstrap.parser().parse_args(["head", "--config-file", "c.json", "--metrics-export-port", "18080",
                                             "--dashboard-agent-grpc-port", "18266"])
    args = ray_ops.head_args(agent_ports=vm_bootstrap.agent_ports(head))
    assert {"--metrics-export-port=18080", "--dashboard-agent-grpc-port=18266",  # given, and the defaults:
            f"--dashboard-agent-listen-port={DASHBOARD_AGENT_LISTEN_PORT}",
            f"--runtime-env-agent-port={RUNTIME_ENV_AGENT_PORT}"} <= set(args)
    worker = vm_bootstrap.parser().parse_args(["worker", "--head-address", "10.0.0.5:6379",
                                               "--runtime-env-agent-port", "18267"])
    args = ray_ops.worker_args(worker.head_address, agent_ports=vm_bootstrap.agent_ports(worker))
    assert f"--metrics-export-port={METRICS_PORT}" in args and "--runtime-env-agent-port=18267" in args
    assert ray_ops.agent_port_args({"metrics_export_port": None}) == []  # None: Ray picks


@pytest.mark.parametrize("value", ["80", "65536", "8o80", "", "1e4", "-1"])
def test_a_port_outside_what_a_node_may_bind_is_refused_by_its_option(value, capsys):
    with pytest.raises(SystemExit):
        vm_bootstrap.parser().parse_args(["worker", "--head-address", "h:1", "--metrics-export-port", value])
    assert "--metrics-export-port: a port is an integer from 1024 to 65535" in capsys.readouterr().err


def test_checkpoint_volume_is_found_by_its_nvme_id_first():
    assert vm_bootstrap.device_candidates("vol-0abc")[0] == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"
