"""Boot a Ray node on a VM and keep its Serve config applied. Standard library only.

Shipped in EC2 user data (with ray_ops and rayserve_pulumi.constants) and run as
`python3 -m rayserve_pulumi.node_agent`. `--mode docker` runs Ray from the bundled image (the EC2
path); `--mode local` runs this interpreter's Ray, which imports the apps from the installed package
(the same steps, run for real in the tests).

  head    mount the checkpoint volume, [start Redis for GCS fault tolerance], [start Prometheus (and
          Grafana in docker mode) on 127.0.0.1], start the Ray head, deploy the Serve config through
          the REST API and wait until every app is RUNNING
  worker  join the head
  sync    validate the Serve config and redeploy it in place when it changed, keeping the last good one when
          it does not validate, and putting it back at once when the new one fails to deploy (DEPLOY_FAILED,
          UNHEALTHY, a timeout) (a systemd timer runs this on EC2); with `--rollout`, applications whose code
          changed (import path, runtime_env) go out gated in steps (rollout.stepped, run where the apps are)
  stop    stop Ray (and Redis, Prometheus, Grafana) on this machine: what this agent started, nothing else
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from rayserve_pulumi.constants import (
    AUTOSCALER_METRICS_PORT, DASHBOARD_AGENT_GRPC_PORT, DASHBOARD_AGENT_LISTEN_PORT, DASHBOARD_METRICS_PORT,
    DASHBOARD_PORT, GCS_PORT, GCS_REDIS_PORT, GRAFANA_IMAGE, GRAFANA_PORT, METRICS_PORT, PROMETHEUS_IMAGE,
    PROMETHEUS_PORT, RAY_HAPROXY_SOCKET, REDIS_IMAGE, ROLLOUT_NOTHING_TO_STEP, ROLLOUT_ROLLED_BACK,
    RUNTIME_ENV_AGENT_PORT, SERVE_PROXY_ENV,
)
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.observability import prometheus

__all__ = [
    "MODULE", "RAY_TMP_HOST", "PROMETHEUS_CONFIG_MOUNT", "PROMETHEUS_UID", "GRAFANA_PROVISIONING",
    "RAY_CONTAINER_UID", "REDIS_CONTAINER_UID", "APPLIED_FILE", "LAST_GOOD_FILE", "CHECK_MODULE", "SYNC_UNIT", "sh",
    "read_config", "device_candidates", "mount_volume", "redis_password", "redis_answers", "redis_conf",
    "redis_pid_file", "start_redis", "stop_redis", "prometheus_pid_file", "metrics_env", "prometheus_docker",
    "grafana_docker", "start_metrics", "stop_metrics", "docker_login", "docker_ray", "setup_auth",
    "container_token", "IMDS_ADDRESS", "CONTAINER_SLICE", "IMDS_UNIT", "docker_run", "redis_docker", "cmd_block_imds",
    "imds_block_rule", "block_imds", "imds_units", "install_imds_block", "STARTUP_TIMED_OUT", "START_ATTEMPTS",
    "node_pid_file", "start_ray",
    "validation_errors", "roll_out", "deploy_if_changed", "systemd_word", "systemd_units", "install_units",
    "install_sync_timer", "cmd_head", "cmd_worker", "cmd_sync", "cmd_stop", "sync_argv", "agent_ports",
    "node_ports", "port_number", "AGENT_PORT_DEFAULTS", "rollout_json", "parser",
    "main",
]

MODULE = "rayserve_pulumi.node_agent"
HEAD_CONTAINER, WORKER_CONTAINER, REDIS_CONTAINER = "ray-head", "ray-worker", "ray-gcs-redis"
PROMETHEUS_CONTAINER, GRAFANA_CONTAINER = "rayserve-prometheus", "rayserve-grafana"
RAY_TMP_HOST = "/var/lib/rayserve/ray"  # the head container's /tmp/ray, shared read-only with Prometheus and Grafana
PROMETHEUS_CONFIG_MOUNT = "/etc/rayserve-prometheus"
PROMETHEUS_UID = 65534  # `nobody`, the Prometheus image's user
GRAFANA_PROVISIONING = f"{prometheus.RAY_TEMP_DIR}/session_latest/metrics/grafana/provisioning"  # Ray writes it
RAY_CONTAINER_UID = 1000  # the `ray` user of rayproject/ray images
REDIS_CONTAINER_UID = 999  # the `redis` user of the official Redis image
APPLIED_FILE = "applied-config.sha256"
LAST_GOOD_FILE = "last-good-config.json"  # the last config that reached RUNNING: what a failed deploy rolls back to
CHECK_MODULE = "rayserve_pulumi.config.serve_check"
SYNC_UNIT = "rayserve-sync"


def sh(args: list[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a command; a failure names the program (not its whole command line) with its redacted stderr."""
    proc = subprocess.run(args, input=input_text, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{procs.program(args)} failed ({proc.returncode}): {procs.redact(proc.stderr[-2000:])}")
    return proc.stdout


# ---- config source -------------------------------------------------------------------------

def read_config(args) -> dict:
    """The Serve config from a file, or from an SSM parameter (via the AWS CLI on the AMI)."""
    if args.config_file:
        return json.loads(Path(args.config_file).read_text())
    raw = sh(["aws", "ssm", "get-parameter", "--name", args.config_ssm, "--region", args.region,
              "--query", "Parameter.Value", "--output", "text"])
    return json.loads(raw)


# ---- checkpoint volume ---------------------------------------------------------------------

def device_candidates(volume_id: str) -> list[str]:
    """Where an attached EBS volume shows up (Nitro NVMe by id first, then Xen names)."""
    return [f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}", "/dev/sdf", "/dev/xvdf"]


def mount_volume(volume_id: str, mount: str, timeout: float = 300) -> None:
    """Wait for the volume, format it only if it holds no filesystem, and mount it."""
    deadline = time.monotonic() + timeout
    while not (device := next((d for d in device_candidates(volume_id) if os.path.exists(d)), None)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"volume {volume_id} not attached after {timeout}s")
        time.sleep(5)
    if not sh(["blkid", "-o", "value", "-s", "TYPE", device], check=False).strip():
        sh(["mkfs.xfs", device])
    os.makedirs(mount, exist_ok=True)
    if sh(["findmnt", "-n", mount], check=False).strip():
        return
    sh(["mount", device, mount])
    with open("/etc/fstab", "a") as fstab:
        fstab.write(f"{device} {mount} xfs defaults,nofail 0 2\n")


# ---- Redis for GCS fault tolerance ---------------------------------------------------------

def redis_password(state_dir: Path) -> str:
    """One password per cluster, kept (0600) on the checkpoint volume so restarts reuse it."""
    return ray_ops.ensure_secret(str(state_dir / "redis-password"))


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def redis_conf(args, password: str, data: Path) -> Path:
    """Redis' settings, password included, in a 0600 file (never on a command line). In docker mode it is
    owned by the image's redis user, which reads it after the entrypoint drops root."""
    conf = Path(args.state_dir) / "redis" / "redis.conf"
    procs.write_private(conf, "\n".join([f"port {args.redis_port}", "bind 127.0.0.1", "protected-mode yes",
                                          f"requirepass {password}", "appendonly yes", f"dir {data}", ""]))
    if args.mode == "docker" and os.geteuid() == 0:
        os.chown(conf, REDIS_CONTAINER_UID, REDIS_CONTAINER_UID)
        os.chown(data, REDIS_CONTAINER_UID, REDIS_CONTAINER_UID)
    return conf


def redis_pid_file(args) -> Path:
    return Path(args.state_dir) / "redis" / "redis-server.pid"


def redis_docker(data: Path, conf: Path) -> list[str]:
    return [*docker_run(REDIS_CONTAINER), "-v", f"{data}:{data}", REDIS_IMAGE, "redis-server", str(conf)]


def start_redis(args, password: str) -> str:
    """Start Redis (append-only file on the checkpoint volume) unless it already runs."""
    if redis_answers(args.redis_port):
        return f"127.0.0.1:{args.redis_port}"
    data = Path(args.state_dir) / "redis"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = redis_conf(args, password, data)
    if args.mode == "docker":
        sh(["docker", "rm", "-f", REDIS_CONTAINER], check=False)
        sh(redis_docker(data, conf))
    else:
        procs.spawn([shutil.which("redis-server") or "redis-server", str(conf)], redis_pid_file(args),
                    log_file=data / "redis.log", wait=False)
    deadline = time.monotonic() + 30
    while not redis_answers(args.redis_port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis did not answer on 127.0.0.1:{args.redis_port} within 30 s (see {data}/redis.log)")
        time.sleep(0.1)
    return f"127.0.0.1:{args.redis_port}"


def stop_redis(args) -> None:
    if args.mode == "docker":
        sh(["docker", "rm", "-f", REDIS_CONTAINER], check=False)
    else:
        procs.stop(redis_pid_file(args), grace_s=5)


# ---- Prometheus and Grafana on the head ----------------------------------------------------

def prometheus_pid_file(args) -> Path:
    return Path(args.state_dir) / "prometheus" / "prometheus.pid"


def metrics_env(args) -> dict[str, str]:
    """Where the head's dashboard finds Prometheus (and Grafana, in docker mode): this machine's loopback."""
    env = {"RAY_PROMETHEUS_HOST": f"http://127.0.0.1:{args.prometheus_port}"}
    if args.mode == "docker":
        env["RAY_GRAFANA_HOST"] = f"http://127.0.0.1:{args.grafana_port}"
    return env


def prometheus_docker(args, folder: Path) -> list[str]:
    return [*docker_run(PROMETHEUS_CONTAINER), "-v", f"{folder}:{PROMETHEUS_CONFIG_MOUNT}:ro", "-v", f"{RAY_TMP_HOST}:{prometheus.RAY_TEMP_DIR}:ro",
            "-v", f"{folder / 'data'}:/prometheus", PROMETHEUS_IMAGE,
            f"--config.file={PROMETHEUS_CONFIG_MOUNT}/{prometheus.CONFIG_FILE}", "--storage.tsdb.path=/prometheus",
            f"--web.listen-address=127.0.0.1:{args.prometheus_port}"]


def grafana_docker(args) -> list[str]:
    """Grafana with the dashboards and datasource Ray generates in its session dir; loopback only (reached
    through a Session Manager port-forward), anonymous viewers."""
    env = {"GF_SERVER_HTTP_ADDR": "127.0.0.1", "GF_SERVER_HTTP_PORT": str(args.grafana_port),
           "GF_PATHS_PROVISIONING": GRAFANA_PROVISIONING, "GF_AUTH_ANONYMOUS_ENABLED": "true",
           "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer", "GF_SECURITY_ALLOW_EMBEDDING": "true"}
    return [*docker_run(GRAFANA_CONTAINER), "-v", f"{RAY_TMP_HOST}:{prometheus.RAY_TEMP_DIR}:ro", *[x for k, v in sorted(env.items()) for x in ("-e", f"{k}={v}")],
            GRAFANA_IMAGE]


def start_metrics(args) -> None:
    """Prometheus on 127.0.0.1 scraping every node through Ray's service-discovery file, with the alert
    rules; in docker mode Grafana beside it with Ray's dashboards."""
    folder = Path(args.state_dir) / "prometheus"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if args.mode == "docker":
        prometheus.write(folder, prometheus.RAY_SD_FILE, args.scrape_interval, seen_as=PROMETHEUS_CONFIG_MOUNT)
        if os.geteuid() == 0:
            os.chown(folder / "data", PROMETHEUS_UID, PROMETHEUS_UID)
        sh(["docker", "rm", "-f", PROMETHEUS_CONTAINER, GRAFANA_CONTAINER], check=False)
        sh(prometheus_docker(args, folder))
        sh(grafana_docker(args))
        return
    prometheus.start(folder, "127.0.0.1", args.prometheus_port, args.scrape_interval, prometheus_pid_file(args),
                     prometheus.sd_file(own_temp_dir(args)))


def metrics_ports_env(args) -> dict[str, str]:
    """Ray's variables for the head's autoscaler and dashboard metrics ports, where they are not Ray's own."""
    moved = {"AUTOSCALER_METRIC_PORT": (args.autoscaler_metrics_port, AUTOSCALER_METRICS_PORT),
             "DASHBOARD_METRIC_PORT": (args.dashboard_metrics_port, DASHBOARD_METRICS_PORT)}
    return {name: str(port) for name, (port, default) in moved.items() if port != default}


def own_temp_dir(args) -> Optional[str]:
    """Outside docker, the head's own Ray temp dir (the state dir names the head): several heads on one
    machine (tests, a developer's) each keep their own service-discovery file. In docker mode, None: the
    head's container is alone with Ray's /tmp/ray (mounted from RAY_TMP_HOST for Prometheus and Grafana)."""
    if args.mode == "docker":
        return None
    return prometheus.ray_temp_dir(str(Path(args.state_dir).resolve()))


def stop_metrics(args) -> None:
    if args.mode == "docker":
        sh(["docker", "rm", "-f", PROMETHEUS_CONTAINER, GRAFANA_CONTAINER], check=False)
    else:
        procs.stop(prometheus_pid_file(args), grace_s=5)


# ---- Ray -----------------------------------------------------------------------------------

def docker_login(image: str, region: str) -> None:
    registry = image.split("/", 1)[0]
    if ".dkr.ecr." in registry:
        password = sh(["aws", "ecr", "get-login-password", "--region", region])
        sh(["docker", "login", "--username", "AWS", "--password-stdin", registry], input_text=password)


def docker_ray(name: str, image: str, ray_args: list[str], env_file: str, mount: str,
               token_file: str | None, share_tmp: bool = False) -> list[str]:
    """`docker run` for a Ray node in the bundled image (host network, model cache on the volume, the
    cluster's auth token mounted read-only where Ray looks for it; with `share_tmp`, Ray's temp dir on the
    host for Prometheus and Grafana). Environment comes from a 0600 file, so no secret is on docker's
    command line; the launcher reads the Redis password from it."""
    token = ["-v", f"{token_file}:/home/ray/.ray/auth_token:ro"] if token_file else []
    tmp = ["-v", f"{RAY_TMP_HOST}:{prometheus.RAY_TEMP_DIR}"] if share_tmp else []
    return [*docker_run(name), "--shm-size=8g", "-v", f"{mount}/models:/home/ray/model-cache", *token, *tmp, "--env-file", env_file,
            image, *ray_ops.ray_command("python", [*ray_args, "--block"])]


def setup_auth(args, create: bool) -> str | None:
    """Token auth (the default): the token lives in the state dir (0600), fetched from SSM when given,
    created when `create` (a local head); REST calls from this process use it."""
    if args.auth_mode == "disabled":
        return None
    path = str(Path(args.state_dir) / "auth_token")
    os.environ["RAY_AUTH_TOKEN_PATH"] = path
    if args.auth_token_ssm and not os.path.lexists(path):
        token = sh(["aws", "ssm", "get-parameter", "--name", args.auth_token_ssm, "--with-decryption",
                    "--region", args.region, "--query", "Parameter.Value", "--output", "text"]).strip()
        ray_ops.write_secret(path, token)
    elif create:
        ray_ops.ensure_auth_token(path)
    elif not os.path.lexists(path):
        raise RuntimeError(f"no Ray auth token at {path}: pass --auth-token-ssm or --auth-mode disabled")
    ray_ops.read_secret(path)  # refuses another user's file or a symlink; narrows a wide mode
    return path


def container_token(args, token_file: str) -> str:
    """A copy of the token the container's `ray` user (uid 1000) can read: 0600 and owned by that uid
    (the host copy stays root's). Only root can hand a file over; elsewhere the user is the same."""
    copy = Path(args.state_dir) / "container-auth-token"
    procs.write_private(copy, ray_ops.read_secret(token_file))
    if os.geteuid() == 0:
        os.chown(copy, RAY_CONTAINER_UID, RAY_CONTAINER_UID)
    return str(copy)


IMDS_ADDRESS = "169.254.169.254"
# Every container this agent runs lives under one systemd slice, whatever user it runs as (Ray's 1000,
# Redis' 999, Grafana's 472, root): the IMDS rule matches the slice's cgroup, not a uid.
CONTAINER_SLICE = "rayserve.slice"
IMDS_UNIT = "rayserve-imds-block"


def docker_run(name: str) -> list[str]:
    """The start of every `docker run` here: detached, restarted with Docker, on the host network, in the
    containers' slice."""
    return ["docker", "run", "-d", "--name", name, "--restart", "unless-stopped", "--network", "host",
            "--cgroup-parent", CONTAINER_SLICE]


def imds_block_rule() -> list[str]:
    """The iptables rule (after `iptables -C|-I`) that refuses every process of the containers' slice the
    instance metadata service: they share the host's network, so IMDS' hop limit 1 alone would not keep
    them out. The cgroup match resolves the path when the rule is added: the slice must exist then."""
    return ["OUTPUT", "-d", IMDS_ADDRESS, "-m", "cgroup", "--path", CONTAINER_SLICE, "-j", "REJECT"]


def block_imds() -> None:
    rule = imds_block_rule()
    if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode != 0:
        sh(["iptables", "-I", *rule])


def imds_units(install_dir: str) -> dict[str, str]:
    """The rule survives a reboot: a persistent slice (so its cgroup exists before any container and is
    the same one the rule resolved), and a oneshot unit adding the rule before Docker starts (Docker
    restarts the containers on boot) that Docker requires, so no container runs without the rule."""
    return {
        CONTAINER_SLICE: "[Unit]\nDescription=Containers of the rayserve node agent\nBefore=slices.target\n\n[Slice]\n",
        f"{IMDS_UNIT}.service": (
            f"[Unit]\nDescription=Refuse the instance metadata service to rayserve's containers\n"
            f"Requires={CONTAINER_SLICE}\nAfter={CONTAINER_SLICE}\nBefore=docker.service\n\n"
            f"[Service]\nType=oneshot\nRemainAfterExit=yes\nWorkingDirectory={install_dir}\n"
            f"Environment=PYTHONPATH={install_dir}\nExecStart=/usr/bin/python3 -m {MODULE} block-imds\n\n"
            f"[Install]\nWantedBy=multi-user.target\nRequiredBy=docker.service\n"),
    }


def install_imds_block() -> None:
    install_units(imds_units)
    sh(["systemctl", "start", CONTAINER_SLICE])
    sh(["systemctl", "enable", "--now", f"{IMDS_UNIT}.service"])


# The raylet of `ray start` waits 15 s for each agent to publish a port it picked, then fails the node with
# this; an agent loading its modules on a busy machine can take longer. The agent gives every agent its port
# (`agent_ports`), so the raylet waits for none; should one still time out (a Ray without the private API the
# launcher uses), a VM container's restart policy starts it again, and the local mode does the same, at most
# START_ATTEMPTS times.
STARTUP_TIMED_OUT = "The current node timed out during startup"
START_ATTEMPTS = 3


def node_pid_file(args, container: str) -> Path:
    return Path(args.state_dir) / f"{container}.pid"


def start_ray(args, ray_args: list[str], env: dict, container: str, token_file: str | None,
              redis_password: str | None = None) -> None:
    start_env = ray_ops.head_start_env() if container == HEAD_CONTAINER else {}  # the dashboard's bound
    env = {**env, **dict(args.serve_env), **start_env, "RAY_AUTH_MODE": args.auth_mode,
           **({ray_ops.REDIS_PASSWORD_ENV: redis_password} if redis_password else {})}
    if args.mode == "docker":
        if args.block_imds:
            install_imds_block()
        env_file = Path(args.state_dir) / f"{container}.env"
        procs.write_private(env_file, "".join(f"{k}={v}\n" for k, v in sorted(env.items())))
        docker_login(args.image, args.region)
        sh(["docker", "pull", args.image])
        sh(["docker", "rm", "-f", container], check=False)
        share_tmp = container == HEAD_CONTAINER and getattr(args, "metrics", False)
        if share_tmp:
            os.makedirs(RAY_TMP_HOST, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(RAY_TMP_HOST, RAY_CONTAINER_UID, RAY_CONTAINER_UID)
        sh(docker_ray(container, args.image, ray_args, str(env_file), args.mount,
                      container_token(args, token_file) if token_file else None, share_tmp))
    else:
        if taken := ray_ops.taken_ports(node_ports(args, head=container == HEAD_CONTAINER)):
            raise SystemExit(f"cannot start the Ray node {container}: {', '.join(taken)} already in use on this "
                             "machine (another Ray node or program); give it free ports")
        env.update({"RAY_AUTH_TOKEN_PATH": token_file} if token_file else {})
        pid_file = node_pid_file(args, container)
        spawn_timeout = {"timeout": ray_ops.head_start_wait_s(start_env)} if start_env else {}  # a worker: spawn's
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                procs.spawn(ray_ops.ray_command(sys.executable, ray_args), pid_file, env=ray_ops.ray_env(env),
                            secrets=[redis_password or ""], name=" ".join(["ray", *ray_args[:2]]),
                            **spawn_timeout)
                return
            except RuntimeError as exc:
                if STARTUP_TIMED_OUT not in str(exc) or attempt == START_ATTEMPTS:
                    raise
                ray_ops.stop(pid_file)  # what this start left: its session only
                print(f"{container}: Ray's node timed out during startup (attempt {attempt} of {START_ATTEMPTS}); "
                      "starting it again, as Docker's restart policy does on a VM", file=sys.stderr, flush=True)


def validation_errors(args, config: dict) -> list[str]:
    """The program's own Serve-config validator (`rayserve_pulumi.config.serve_check`), run where the apps'
    code and Ray's schema are: inside the head container (docker) or with this interpreter (local)."""
    python = ["docker", "exec", "-i", HEAD_CONTAINER, "python"] if args.mode == "docker" else [sys.executable]
    proc = subprocess.run([*python, "-m", CHECK_MODULE, "-"], input=json.dumps(config), capture_output=True,
                          text=True, timeout=300, cwd="/")  # not the agent's folder: the full package validates
    if proc.returncode == 0:
        return []
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return lines or [f"the validator exited with status {proc.returncode}"]


def rollout_request(args, dash: str, previous: dict, config: dict) -> dict:
    """What rollout.stepped reads on stdin. Under Serve's HAProxy ingress (the head's `--serve-env`), the admin
    socket Ray gives it by default: HAProxy is held off the replicas of an application whose route a deploy
    changes (rollout.ingress_hold)."""
    port = (config.get("http_options") or {}).get("port", 8000)
    haproxy = SERVE_PROXY_ENV["haproxy"].items() <= dict(getattr(args, "serve_env", None) or []).items()
    return {"dashboard": dash, "serve_url": f"http://127.0.0.1:{port}", "live": previous, "target": config,
            "rollout": json.loads(args.rollout), "auth_token": ray_ops.auth_token(),
            "haproxy_socket": RAY_HAPROXY_SOCKET if haproxy else None}


def roll_out(args, dash: str, previous: dict, config: dict) -> Optional[str]:
    """The gated rollout of the applications whose code changed (rollout.stepped, run where the apps' code
    and the splitter are: inside the head container (docker) or with this interpreter (local)): "rolled out",
    "rolled back" (a line on stderr says why), or None when no application's code changed."""
    python = ["docker", "exec", "-i", HEAD_CONTAINER, "python"] if args.mode == "docker" else [sys.executable]
    request = rollout_request(args, dash, previous, config)
    proc = subprocess.Popen([*python, "-m", "rayserve_pulumi.rollout.stepped"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")  # not the agent's folder: the full package
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    last = ""
    for line in proc.stderr:  # progress as it comes
        print(f"sync: {line.rstrip()}", file=sys.stderr, flush=True)
        last = line.strip() or last
    status = proc.wait()
    if status == ROLLOUT_NOTHING_TO_STEP:
        return None
    if status == ROLLOUT_ROLLED_BACK:
        print(f"sync: Serve config {ray_ops.config_hash(config)} was rolled back: {last}; the previous config "
              f"{ray_ops.config_hash(previous)} is serving", file=sys.stderr, flush=True)
        return "rolled back"
    if status != 0:
        raise RuntimeError(f"the gated rollout of Serve config {ray_ops.config_hash(config)} failed: {last}")
    return "rolled out"


def deploy_if_changed(args, force: bool = False) -> str:
    """Apply the config when its digest differs from the last applied one, or an app is missing; before
    applying, validate it as the program does. Returns "unchanged", "redeployed", "refused" (the applied
    config stays; a line on stderr says why) or "rolled back" (it failed to deploy, and the last config that
    was RUNNING serves again; a line on stderr says why)."""
    config = read_config(args)
    dash = f"http://127.0.0.1:{args.dashboard_port}"
    state = Path(args.state_dir)
    applied, last_good = state / APPLIED_FILE, state / LAST_GOOD_FILE
    running = ray_ops.applications(dash)
    current = applied.read_text().strip() if applied.exists() else ""
    digest = ray_ops.config_hash(config)
    names = [a.get("name") for a in config.get("applications") or [] if isinstance(a, dict)]
    if not force and current == digest and names and all(n in running for n in names):
        return "unchanged"
    errors = validation_errors(args, config)
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        print(f"sync: refused Serve config {digest}: {errors[0]}{more}; keeping the applied config "
              f"{current or '(none)'}", file=sys.stderr, flush=True)
        return "refused"
    previous = json.loads(last_good.read_text()) if last_good.exists() else None
    if getattr(args, "rollout", None) and previous is not None and ray_ops.config_hash(previous) != digest:
        stepped = roll_out(args, dash, previous, config)
        if stepped is not None:
            state.mkdir(parents=True, exist_ok=True)
            applied.write_text(digest)  # a rolled-back config is not retried every poll: a new one (digest) is
            if stepped == "rolled out":
                procs.write_private(last_good, json.dumps(config))
            return stepped
    try:
        ray_ops.deploy(dash, config)
        ray_ops.wait_running(dash, names, timeout=args.timeout)
    except (ray_ops.ServeDeployError, TimeoutError) as exc:
        if previous is None or ray_ops.config_hash(previous) == digest:
            raise
        ray_ops.deploy(dash, previous)
        ray_ops.wait_running(dash, [a["name"] for a in previous["applications"]], timeout=args.timeout)
        applied.write_text(digest)  # not retried every poll: a new config (another digest) is
        print(f"sync: Serve config {digest} failed to deploy: {exc}; rolled back: the previous config "
              f"{ray_ops.config_hash(previous)} is serving", file=sys.stderr, flush=True)
        return "rolled back"
    state.mkdir(parents=True, exist_ok=True)
    applied.write_text(digest)
    procs.write_private(last_good, json.dumps(config))
    return "redeployed"


def systemd_word(word: str) -> str:
    """One ExecStart argument as systemd reads it back: quoted, with its quotes, backslashes and `%` escaped,
    unless it is plain (a JSON `--rollout` is not)."""
    if word and all(c.isalnum() or c in "-_./:=,@+" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_units(install_dir: str, argv: list[str], period_s: int) -> dict[str, str]:
    """A oneshot service running `sync` with the head's arguments, and its timer."""
    cmd = " ".join(systemd_word(w) for w in ["/usr/bin/python3", "-m", MODULE, "sync", *argv])
    return {
        f"{SYNC_UNIT}.service": f"[Unit]\nDescription=Apply the Ray Serve config\nAfter=docker.service\n\n"
                                f"[Service]\nType=oneshot\nWorkingDirectory={install_dir}\n"
                                f"Environment=PYTHONPATH={install_dir}\nExecStart={cmd}\n",
        f"{SYNC_UNIT}.timer": f"[Unit]\nDescription=Poll the Ray Serve config\n\n[Timer]\nOnBootSec=60\n"
                              f"OnUnitActiveSec={period_s}\n\n[Install]\nWantedBy=timers.target\n",
    }


def install_units(units) -> None:
    """Write systemd units (unit file name -> body, from the folder holding rayserve_pulumi/) and reload."""
    for name, body in units(str(Path(__file__).resolve().parents[2])).items():
        Path(f"/etc/systemd/system/{name}").write_text(body)
    sh(["systemctl", "daemon-reload"])


def install_sync_timer(args, argv: list[str]) -> None:
    install_units(lambda install_dir: systemd_units(install_dir, argv, args.poll_seconds))
    sh(["systemctl", "enable", "--now", f"{SYNC_UNIT}.timer"])


# ---- commands ------------------------------------------------------------------------------

def cmd_head(args) -> None:
    if args.volume_id:
        mount_volume(args.volume_id, args.mount)
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    token_file = setup_auth(args, create=True)
    env, password = {}, None
    if args.gcs_redis:
        password = redis_password(Path(args.state_dir))
        env = ray_ops.gcs_ft_env(start_redis(args, password), args.cluster_name)
    env.update(metrics_ports_env(args))
    if args.metrics:
        start_metrics(args)
        env.update(metrics_env(args))
    ray_args = ray_ops.head_args(gcs_port=args.gcs_port, dashboard_port=args.dashboard_port,
                                 dashboard_host=args.dashboard_host, num_cpus=args.num_cpus,
                                 temp_dir=own_temp_dir(args), agent_ports=agent_ports(args))
    start_ray(args, ray_args, env, HEAD_CONTAINER, token_file, password)
    ray_ops.wait_dashboard(f"http://127.0.0.1:{args.dashboard_port}", timeout=args.timeout)
    if args.no_deploy:  # a restart: with --gcs-redis, Serve recovers its apps from the GCS by itself
        return
    if deploy_if_changed(args, force=True) == "refused":
        raise SystemExit(1)
    if args.mode == "docker":
        install_sync_timer(args, sync_argv(args))


def cmd_worker(args) -> None:
    token_file = setup_auth(args, create=False)
    start_ray(args, ray_ops.worker_args(args.head_address, num_cpus=args.num_cpus, agent_ports=agent_ports(args)),
              {}, WORKER_CONTAINER, token_file)


def cmd_sync(args) -> None:
    setup_auth(args, create=False)
    outcome = deploy_if_changed(args)
    print(outcome)
    if outcome in ("refused", "rolled back"):
        raise SystemExit(1)


def cmd_block_imds(args) -> None:
    block_imds()


def cmd_stop(args) -> None:
    if args.mode == "docker":
        sh(["docker", "rm", "-f", HEAD_CONTAINER, WORKER_CONTAINER], check=False)
    else:
        for container in (HEAD_CONTAINER, WORKER_CONTAINER):
            ray_ops.stop(node_pid_file(args, container))
        prometheus.remove_ray_temp_dir(own_temp_dir(args))
    stop_metrics(args)
    stop_redis(args)


def sync_argv(args) -> list[str]:
    src = ["--config-file", args.config_file] if args.config_file else ["--config-ssm", args.config_ssm]
    rollout = ["--rollout", args.rollout] if args.rollout else []
    serve_env = [x for key, value in args.serve_env for x in ("--serve-env", f"{key}={value}")]  # its ingress
    return [*src, "--region", args.region, "--dashboard-port", str(args.dashboard_port),
            "--state-dir", args.state_dir, "--timeout", str(args.timeout), "--auth-mode", args.auth_mode, *serve_env,
            *rollout]


def agent_ports(args) -> dict[str, int]:
    """The node's agents' ports from its command line (ray_ops.AGENT_PORT_FLAGS' keywords)."""
    return {key: getattr(args, key) for key in ray_ops.AGENT_PORT_FLAGS}


def node_ports(args, head: bool) -> dict[str, tuple[str, int]]:
    """The ports a node binds at its start, by option: (host, port) for ray_ops.taken_ports."""
    ports = {ray_ops.AGENT_PORT_FLAGS[key]: ("0.0.0.0", port) for key, port in agent_ports(args).items()}
    if head:
        ports.update({"--gcs-port": ("0.0.0.0", args.gcs_port),
                      "--dashboard-port": (args.dashboard_host, args.dashboard_port)})
    return ports


def port_number(value: str) -> int:
    """A TCP port a Ray process binds: an integer from 1024 to 65535."""
    try:
        number = int(value, 10)
    except ValueError:
        number = 0
    if not 1024 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port is an integer from 1024 to 65535, not {value[:40]!r}")
    return number


# each agent's default port: one node per machine on a VM; nodes sharing a machine give each its own
AGENT_PORT_DEFAULTS = {"metrics_export_port": METRICS_PORT, "dashboard_agent_listen_port": DASHBOARD_AGENT_LISTEN_PORT,
                       "dashboard_agent_grpc_port": DASHBOARD_AGENT_GRPC_PORT,
                       "runtime_env_agent_port": RUNTIME_ENV_AGENT_PORT}


def rollout_json(value: str) -> str:
    """`--rollout`: a JSON object (its keys are checked by rollout.settings where the rollout runs)."""
    try:
        if isinstance(json.loads(value), dict):
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--rollout must be a JSON object (rayserve:rollout), not {value[:80]!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, config: bool = True):
        sp.add_argument("--mode", choices=["docker", "local"], default="docker")
        sp.add_argument("--image", help="bundled Serve image (docker mode)")
        sp.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
        sp.add_argument("--num-cpus", type=int)
        sp.add_argument("--mount", default="/mnt/ray-checkpoint")
        sp.add_argument("--state-dir", default="/mnt/ray-checkpoint/rayserve")
        sp.add_argument("--redis-port", type=port_number, default=GCS_REDIS_PORT)
        sp.add_argument("--timeout", type=float, default=600)
        sp.add_argument("--dashboard-port", type=port_number, default=DASHBOARD_PORT)
        sp.add_argument("--auth-mode", choices=["token", "disabled"], default="token")
        sp.add_argument("--serve-env", action="append", default=[], type=ray_ops.serve_env_pair,
                        help="RAY_SERVE_<NAME>=<value> for every Ray process (Serve's ingress and tuning)")
        sp.add_argument("--auth-token-ssm", help="SecureString parameter holding the cluster's Ray auth token")
        sp.add_argument("--block-imds", action="store_true",
                        help="docker mode: refuse every container the instance metadata service, across reboots")
        sp.add_argument("--prometheus-port", type=port_number, default=PROMETHEUS_PORT)
        sp.add_argument("--grafana-port", type=port_number, default=GRAFANA_PORT)
        if config:
            sp.add_argument("--rollout", type=rollout_json, help="rayserve:rollout as JSON: applications whose "
                            "code changed go out gated (rollout.stepped)")
            src = sp.add_mutually_exclusive_group(required=True)
            src.add_argument("--config-file")
            src.add_argument("--config-ssm")

    def node(sp):
        for key, flag in ray_ops.AGENT_PORT_FLAGS.items():
            sp.add_argument(flag, dest=key, type=port_number, default=AGENT_PORT_DEFAULTS[key],
                            help=f"`ray start {flag}` (given, so the raylet waits for no agent to publish one)")

    head = sub.add_parser("head")
    common(head)
    node(head)
    head.add_argument("--gcs-port", type=port_number, default=GCS_PORT)
    head.add_argument("--dashboard-host", default="0.0.0.0")
    head.add_argument("--volume-id")
    head.add_argument("--gcs-redis", action="store_true", help="GCS fault tolerance with Redis on the volume")
    head.add_argument("--cluster-name", default="rayserve")
    head.add_argument("--poll-seconds", type=int, default=30)
    head.add_argument("--no-deploy", action="store_true", help="(re)start the head only; do not deploy")
    head.add_argument("--metrics", action="store_true", help="Prometheus (+ Grafana in docker mode) on 127.0.0.1")
    head.add_argument("--scrape-interval", type=int, default=15, help="seconds between Prometheus scrapes")
    head.add_argument("--autoscaler-metrics-port", type=port_number, default=AUTOSCALER_METRICS_PORT,
                      help="where Ray's autoscaler exports metrics (Ray's default; another head on the machine: another)")
    head.add_argument("--dashboard-metrics-port", type=port_number, default=DASHBOARD_METRICS_PORT,
                      help="where the dashboard exports metrics (Ray's default; another head on the machine: another)")
    head.set_defaults(func=cmd_head)
    worker = sub.add_parser("worker")
    common(worker, config=False)
    node(worker)
    worker.add_argument("--head-address", required=True)
    worker.set_defaults(func=cmd_worker)
    sync = sub.add_parser("sync")
    common(sync)
    sync.set_defaults(func=cmd_sync)
    sub.add_parser("block-imds", help="add the IMDS rule for the containers' slice (its systemd unit runs "
                   "this before Docker)").set_defaults(func=cmd_block_imds)
    stop = sub.add_parser("stop")
    common(stop, config=False)
    stop.set_defaults(func=cmd_stop)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
