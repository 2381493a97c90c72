"""Ray cluster and Serve REST operations, standard library only.

One implementation used by the `local` platform's provider, the VM bootstrap (shipped to EC2 in
user data, where only python3 is guaranteed) and the tests. Serve apps are deployed through the
dashboard's REST API (PUT /api/serve/applications/), the same call `serve deploy` makes.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping

from rayserve_pulumi.constants import DASHBOARD_PORT, GCS_PORT
from rayserve_pulumi.node_agent import procs

__all__ = [
    "SERVE_API", "DEFAULT_TOKEN_PATH", "TERMINAL_FAILURES", "DEAD_CONTROLLER", "ServeDeployError", "ServeApiError",
    "READ_TIMEOUT_S", "PUT_TIMEOUT_S", "NoAnswer", "ray_executable", "SERVE_ENV_NAME", "serve_env_pair", "token_path",
    "auth_token", "write_secret", "read_secret", "ensure_secret", "ensure_auth_token", "config_hash", "auth_env",
    "head_args", "AGENT_PORT_FLAGS",
    "agent_port_args", "taken_ports", "raylet_told_listen_port", "REDIS_PASSWORD_ENV", "RAY_LAUNCHER",
    "ray_command", "gcs_ft_env", "DASHBOARD_START_ENV", "DASHBOARD_START_S", "NODE_START_MARGIN_S", "head_start_env",
    "head_start_wait_s", "ray_env", "worker_args", "stop", "http_ok", "serve_api_answers", "wait_dashboard",
    "deploy", "api_get", "status", "applications", "EXCEPTION_LINE", "HAPROXY_LOG_LINE", "failure_cause",
    "failure_summary", "running_replicas", "progress_line", "replicas_ready", "wait_running", "delete_apps",
]

SERVE_API = "/api/serve/applications/"
# Ray >= 2.5x token authentication: `ray start` enables it when RAY_AUTH_MODE=token (or a token file
# exists); the dashboard then wants `Authorization: Bearer <token>`.
DEFAULT_TOKEN_PATH = os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
TERMINAL_FAILURES = {"DEPLOY_FAILED", "UNHEALTHY"}
# A dashboard answering with these reached a Serve controller that is gone (shut down, or killed): it lets go
# of it on a later request (and a deploy starts one anew), so the request is made again (CI runs failed a
# drift repair on it, once in the deploy, once in a read).
DEAD_CONTROLLER = re.compile(r"ActorDiedError|ActorUnavailableError|The actor is dead")


def _refusal(exc: urllib.error.HTTPError, deadline: float, pause_s: float) -> str | None:
    """The body of a refused Serve API request; None, after `pause_s`, when it names a controller that is gone
    (DEAD_CONTROLLER) and `deadline` is ahead: then the request is to be made again."""
    body = exc.read().decode(errors="replace")
    if DEAD_CONTROLLER.search(body) and time.monotonic() < deadline:
        time.sleep(pause_s)
        return None
    return body


class ServeDeployError(RuntimeError):
    """The Serve controller rejected the config or an application failed to start."""


class ServeApiError(RuntimeError):
    """The dashboard's Serve API refused a read."""


# how long one request to the dashboard waits for its answer: a read, and a PUT of a whole config
READ_TIMEOUT_S, PUT_TIMEOUT_S = 30.0, 60.0


class NoAnswer(TimeoutError):
    """A dashboard request that got no answer in its time (an OSError, as the socket's timeout is, so callers
    that treat an unreachable dashboard as gone still do), naming the request instead of "timed out"."""


def ray_executable() -> str:
    """The `ray` CLI beside the running interpreter (the venv's), else the one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "ray")
    return local if os.path.exists(local) else (shutil.which("ray") or "ray")


SERVE_ENV_NAME = re.compile(r"^RAY_SERVE_[A-Z0-9_]+$")


def serve_env_pair(text: str) -> tuple[str, str]:
    """`RAY_SERVE_X=value` (a Serve setting the program chose) as a pair; anything else is refused."""
    key, sep, value = text.partition("=")
    if not sep or not SERVE_ENV_NAME.match(key) or not re.fullmatch(r"[\w.:,-]*", value):  # commas: a list
        raise ValueError(f"--serve-env takes RAY_SERVE_<NAME>=<value>, not {text!r}")
    return key, value


def token_path() -> str:
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or DEFAULT_TOKEN_PATH


def auth_token() -> str | None:
    """The token REST calls send: $RAY_AUTH_TOKEN, else the file at token_path(), else none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    try:
        return read_secret(token_path()) or None
    except FileNotFoundError:
        return None


def write_secret(path: str, value: str) -> None:
    """Write a secret file that is 0600 from its creation, never following a symlink (procs.write_private)."""
    procs.write_private(Path(path), value)


def read_secret(path: str) -> str:
    """A secret file's content, opened without following a symlink. A file of another user is refused; a
    mode wider than 0600 is narrowed, and said on stderr."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"{path} is not a regular file; refusing to read a secret from it")
        if st.st_uid != os.geteuid():
            raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to this user; refusing to use it")
        if st.st_mode & 0o077:
            os.fchmod(f.fileno(), 0o600)
            print(f"{path} was mode {stat.S_IMODE(st.st_mode):o}; narrowed to 600", file=sys.stderr, flush=True)
        return f.read().strip()


def ensure_secret(path: str) -> str:
    """The secret in `path`, created (256 random bits, 0600) if missing. Created whole under a name of its
    own, then linked into place: of two processes creating it at once (two stacks' `up`), one wins and both
    read the winner's, never a half-written or overwritten file."""
    if not os.path.lexists(path):
        draft = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        write_secret(draft, secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    return read_secret(path)


def ensure_auth_token(path: str | None = None) -> str:
    """Create the Ray auth token file if missing; return the token."""
    return ensure_secret(path or token_path())


def config_hash(config: dict) -> str:
    """Stable short hash of a Serve config (what was applied; what triggers redeploys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def auth_env(mode: str) -> dict[str, str]:
    """Environment for `ray start` with an explicit auth mode ("token" needs ensure_auth_token first)."""
    if mode not in ("token", "disabled"):
        raise ValueError(f"auth mode must be token or disabled, not {mode!r}")
    env = {"RAY_AUTH_MODE": mode}
    if mode == "token":
        env["RAY_AUTH_TOKEN_PATH"] = token_path()
    return env


def head_args(*, gcs_port: int = GCS_PORT, dashboard_port: int = DASHBOARD_PORT, dashboard_host: str = "127.0.0.1",
              num_cpus: int | None = None, num_gpus: int | None = None, node_ip: str | None = None,
              temp_dir: str | None = None, agent_ports: dict[str, int] | None = None) -> list[str]:
    """Arguments after `ray` for a VM's head container (the local platform starts its head with
    `local.head`). A Redis password is never among them: `ray_command` passes it through the environment."""
    args = ["start", "--head", f"--port={gcs_port}", f"--dashboard-host={dashboard_host}",
            f"--dashboard-port={dashboard_port}", "--disable-usage-stats"]
    if node_ip:
        args.append(f"--node-ip-address={node_ip}")
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    if temp_dir:
        args.append(f"--temp-dir={temp_dir}")
    return args + agent_port_args(agent_ports)


# A node's agents' ports, by keyword, and `ray start`'s flag for each: given, the raylet waits for no agent to
# publish one (why: constants.DASHBOARD_AGENT_GRPC_PORT; the dashboard agent's HTTP port: raylet_told_listen_port).
AGENT_PORT_FLAGS = {"metrics_export_port": "--metrics-export-port",
                    "dashboard_agent_listen_port": "--dashboard-agent-listen-port",
                    "dashboard_agent_grpc_port": "--dashboard-agent-grpc-port",
                    "runtime_env_agent_port": "--runtime-env-agent-port"}


def taken_ports(wanted: dict[str, tuple[str, int | None]]) -> list[str]:
    """`name port` for each of `wanted` (name -> (host, port); port None: not wanted) that something already
    listens on, probed with SO_REUSEADDR as Ray binds: a port a stopped node left in TIME_WAIT is free. A node
    asked for a taken port fails slowly and names none (Ray's GCS gives up after 40 s)."""
    taken = []
    for name, (host, port) in wanted.items():
        if port is None:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append(f"{name} {port}")
    return taken


def agent_port_args(ports: dict[str, int] | None) -> list[str]:
    """`ray start` flags for the agents' ports given (AGENT_PORT_FLAGS' keywords; None or absent: Ray picks)."""
    return [f"{flag}={ports[key]}" for key, flag in AGENT_PORT_FLAGS.items() if (ports or {}).get(key) is not None]


def raylet_told_listen_port(port):
    """Make Ray's start of a raylet pass it the dashboard agent's HTTP port too: Ray hands that port to the
    agent alone, and the raylet, told nothing, waits for the agent to publish it (15 s at most, then the node
    fails; the other agents' ports Ray does pass on). Patches Ray's private `services.start_ray_process` and
    returns what undoes it; None where the installed Ray lacks it (the raylet then waits, as under `ray start`).
    Plain Python that imports nothing of this package: RAY_LAUNCHER carries its source into Ray's images."""
    try:
        from ray._private import ray_constants, services
        start, raylet = services.start_ray_process, ray_constants.PROCESS_TYPE_RAYLET
    except (ImportError, AttributeError):
        return None

    def start_ray_process(command, process_type, *rest, **options):
        if process_type == raylet:
            command = [*command, "--dashboard_agent_listen_port=" + str(port)]
        return start(command, process_type, *rest, **options)

    services.start_ray_process = start_ray_process
    return lambda: setattr(services, "start_ray_process", start)


# `ray <args>` run by a Python launcher that appends `--redis-password` from the environment, so the
# password is on no command line of ours (Ray itself still hands it to gcs_server as a flag), and that tells
# the raylet the dashboard agent's HTTP port when `--dashboard-agent-listen-port` gives one
# (raylet_told_listen_port, whose source it carries: it runs in images that lack this package).
REDIS_PASSWORD_ENV = "RAYSERVE_REDIS_PASSWORD"
RAY_LAUNCHER = f"""\
import os, sys
pw = os.environ.pop({REDIS_PASSWORD_ENV!r}, '')
sys.argv = ['ray', *sys.argv[1:], *(['--redis-password', pw, '--redis-username', 'default'] if pw else [])]
{inspect.getsource(raylet_told_listen_port)}
listen = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--dashboard-agent-listen-port=')]
if listen:
    raylet_told_listen_port(listen[0])
from ray.scripts.scripts import main
main()
"""


def ray_command(python: str, ray_args: list[str]) -> list[str]:
    """`python -c <launcher> <ray_args>`: `ray <ray_args>` plus the Redis password from $RAYSERVE_REDIS_PASSWORD."""
    return [python, "-c", RAY_LAUNCHER, *ray_args]


def gcs_ft_env(redis_address: str, namespace: str) -> dict[str, str]:
    """Environment making the GCS persist to an external Redis (GCS fault tolerance)."""
    return {"RAY_REDIS_ADDRESS": redis_address, "RAY_external_storage_namespace": namespace}


# Ray fails a head whose dashboard has not recorded its address within $RAY_DASHBOARD_STARTUP_TIMEOUT_S (Ray's
# default: 60 s). The dashboard's start is a head process and nine module processes, each importing Ray; on two
# cores shared with other work it took longer than 60 s (a CI run: its log had reached "Loaded 9 subprocess
# modules" at 52 s). A head is given DASHBOARD_START_S instead, unless the environment names its own bound. A
# dashboard that exits still fails the head at once (Ray polls its process); only a slow one is waited for.
DASHBOARD_START_ENV = "RAY_DASHBOARD_STARTUP_TIMEOUT_S"
DASHBOARD_START_S = 180
NODE_START_MARGIN_S = 120  # beyond the dashboard's bound, for the GCS and the raylet: the wait for a whole start


def head_start_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{DASHBOARD_START_ENV: seconds} for a head's start: `environ`'s (this process's by default) when set, which
    must be a whole number of seconds (Ray reads it with int()), else DASHBOARD_START_S."""
    value = (os.environ if environ is None else environ).get(DASHBOARD_START_ENV)
    if value is None:
        return {DASHBOARD_START_ENV: str(DASHBOARD_START_S)}
    if not re.fullmatch(r"[0-9]{1,6}", value.strip()):
        raise ValueError(f"${DASHBOARD_START_ENV} must be a whole number of seconds (0 to 999999), not {value!r}")
    return {DASHBOARD_START_ENV: value.strip()}


def head_start_wait_s(start_env: Mapping[str, str]) -> int:
    """How long to wait for a whole head start given `head_start_env`'s answer: the dashboard's bound and the
    margin, so the wait always outlasts Ray's own for the dashboard."""
    return int(start_env[DASHBOARD_START_ENV]) + NODE_START_MARGIN_S


def ray_env(extra: dict | None = None) -> dict:
    """This process's environment plus `extra` (Ray's workers import the apps from the installed package)."""
    return dict(os.environ, **(extra or {}))


def worker_args(head_address: str, *, num_cpus: int | None = None,
                agent_ports: dict[str, int] | None = None) -> list[str]:
    """Arguments after `ray` for a worker joining `head_address` (host:gcs_port)."""
    args = ["start", f"--address={head_address}", "--disable-usage-stats"]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    return args + agent_port_args(agent_ports)


def stop(pid_file: str | Path, grace_s: float = 2) -> bool:
    """Stop the Ray node started with `pid_file` (its whole session: raylet, GCS, workers, Serve's HAProxy);
    nothing else on the machine. True when it was running. The grace is short: Ray's GCS server and
    autoscaler monitor outwait a SIGTERM by more than 30 s, and a node's state is Redis' or nobody's."""
    return procs.stop(Path(pid_file), grace_s)


def _request(method: str, url: str, body: dict | None = None, timeout: float | None = None):
    timeout = READ_TIMEOUT_S if timeout is None else timeout
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    token = auth_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except (TimeoutError, urllib.error.URLError) as exc:
        # urllib wraps a connect timeout in URLError and lets one waiting for the answer through as it is
        if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
            raise NoAnswer(f"{method} {url} got no answer within {round(timeout, 1):g} s") from None
        raise
    return json.loads(raw) if raw.strip() else None


def http_ok(url: str, timeout: float = 2) -> bool:
    """Whether a GET answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _serve_api_error(dashboard_url: str, timeout: float = 5) -> Exception | None:
    """One GET of the dashboard's Serve API: None when it answers, else why not."""
    try:
        _request("GET", dashboard_url.rstrip("/") + SERVE_API, timeout=timeout)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return exc


def serve_api_answers(dashboard_url: str, timeout: float = 5) -> bool:
    """Whether a dashboard's Serve API answers right now (one request: a refused connection is False at once)."""
    return _serve_api_error(dashboard_url, timeout) is None


def wait_dashboard(dashboard_url: str, timeout: float = 120) -> None:
    """Wait until the dashboard's Serve API answers."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        last = _serve_api_error(dashboard_url)
        if last is None:
            return
        time.sleep(0.2)
    raise TimeoutError(f"Ray dashboard at {dashboard_url} did not answer in {timeout}s: {last}")


def deploy(dashboard_url: str, config: dict, settle_timeout: float = 120, taken_within: float = 5) -> None:
    """Apply a whole ServeDeploySchema config (declarative: apps left out are deleted). While Serve shuts down
    (after `delete_apps`: applications DELETING, then a controller on its way out) a config sent is dropped
    without an error, or refused naming the dead controller, so: wait out DELETING, send, and send again until
    Serve lists every application the config names (sending the same config twice is harmless: it is
    declarative). Any other refusal raises at once with its cause."""
    names = {app["name"] for app in config.get("applications") or []}
    deadline = time.monotonic() + settle_timeout
    while True:
        while any(a.get("status") == "DELETING" for a in applications(dashboard_url).values()):
            if time.monotonic() > deadline:
                raise ServeDeployError(f"Serve applications still DELETING after {settle_timeout:.0f} s; not deploying")
            time.sleep(0.5)
        try:
            _request("PUT", dashboard_url.rstrip("/") + SERVE_API, config, timeout=PUT_TIMEOUT_S)
        except NoAnswer:
            pass  # taken or not: the listing below tells, and the config is sent again if not
        except urllib.error.HTTPError as exc:
            if (body := _refusal(exc, deadline, pause_s=0.5)) is None:
                continue  # the next request finds Serve started anew
            # the dashboard answers a traceback: its exception line is the cause, in one line
            raise ServeDeployError(f"Serve rejected the config: {exc.code} {failure_cause(body)}") from exc
        taken_by = min(deadline, time.monotonic() + taken_within)
        while time.monotonic() < taken_by:
            if names <= set(applications(dashboard_url)):
                return
            time.sleep(0.2)
        if time.monotonic() >= deadline:
            raise ServeDeployError(f"Serve did not take the config within {settle_timeout:.0f} s (it lists none of "
                                   f"{sorted(names - set(applications(dashboard_url)))})")


def api_get(dashboard_url: str, path: str):
    """GET a dashboard API path (authenticated when a token is configured)."""
    return _request("GET", dashboard_url.rstrip("/") + path)


def status(dashboard_url: str, settle_timeout: float = 30) -> dict:
    """The Serve details document (applications, their status and deployments). Right after Serve's shutdown
    the dashboard can still hold the controller it killed and answer a read with a 500 naming the dead actor
    (a CI run's drift repair failed on it); it lets go of it on a later request, so that answer is asked
    again for up to `settle_timeout`. Any other refusal raises with its cause, in one line; no answer at all
    within READ_TIMEOUT_S raises NoAnswer."""
    deadline = time.monotonic() + settle_timeout
    while True:
        try:
            return api_get(dashboard_url, SERVE_API) or {}
        except urllib.error.HTTPError as exc:
            if (body := _refusal(exc, deadline, pause_s=0.2)) is None:
                continue
            raise ServeApiError(f"the dashboard's Serve API answered {exc.code}: "
                                f"{failure_cause(body) or exc.reason}") from None


def applications(dashboard_url: str) -> dict:
    """Application name -> its details, from the Serve details document (empty when nothing is deployed)."""
    return status(dashboard_url).get("applications") or {}


EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")


# a line HAProxy logs on stderr: `[ALERT]    (12944) : Binding [...]: cannot bind socket ...`
HAPROXY_LOG_LINE = re.compile(r"\[(NOTICE|WARNING|ALERT)\]\s+\(\d+\)\s*:\s*(.*)$")


def failure_cause(message: str) -> str:
    """What a Serve status message or a dashboard traceback says went wrong, in one line: the last exception
    line with the rest of its message (a message can run on over lines, as HAProxy's start-up log does: its
    NOTICE/WARNING lines are left out, its ALERT lines kept), else the message's last line."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    last = max((i for i, line in enumerate(lines) if EXCEPTION_LINE.match(line)), default=None)
    if last is None:
        return (lines[-1] if lines else "")[:500]
    parts = []
    for text in [EXCEPTION_LINE.match(lines[last]).group(1), *lines[last + 1:]]:
        head, sep, tail = text.partition("[")  # `RuntimeError: HAProxy crashed during startup: [NOTICE] ...`
        log = HAPROXY_LOG_LINE.match(sep + tail)
        if not log:
            parts.append(text)
            continue
        if head.strip():
            parts.append(head.strip())
        if log.group(1) == "ALERT":
            parts.append(log.group(2))
    return " ".join(parts)[:500]


def failure_summary(app_name: str, app: dict) -> str:
    """`app: message` plus `app.deployment: cause` for each failed deployment."""
    parts = [f"{app_name}: {failure_cause(app.get('message', '')) or app.get('status')}"]
    for dep_name, dep in (app.get("deployments") or {}).items():
        if dep.get("status") in TERMINAL_FAILURES or dep.get("status_trigger", "").endswith("FAILED"):
            parts.append(f"{app_name}.{dep_name}: {failure_cause(dep.get('message', '')) or dep.get('status')}")
    return "; ".join(parts)


def running_replicas(deployment: dict) -> int:
    """How many of a deployment's replicas (from the Serve REST API) are RUNNING."""
    return sum(1 for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING")


def progress_line(name: str, app: dict) -> str:
    """`fruit DEPLOYING (FruitMarket 1/1, MangoStand 0/2)`: an application's status and running replicas."""
    parts = []
    for dep_name, dep in sorted((app.get("deployments") or {}).items()):
        parts.append(f"{dep_name} {running_replicas(dep)}/{dep.get('target_num_replicas', '?')}")
    return f"{name} {app.get('status', 'NOT_STARTED')}" + (f" ({', '.join(parts)})" if parts else "")


def replicas_ready(app: dict) -> bool:
    """Every deployment HEALTHY with as many RUNNING replicas as it targets (Serve can report an
    application RUNNING while replicas of a failed update are still being replaced)."""
    for dep in (app.get("deployments") or {}).values():
        if dep.get("status") != "HEALTHY" or running_replicas(dep) < int(dep.get("target_num_replicas") or 0):
            return False
    return True


def wait_running(dashboard_url: str, app_names: list[str], timeout: float = 300,
                 on_progress: Callable[[str], None] | None = None) -> dict:
    """Block until every named app is RUNNING; on DEPLOY_FAILED raise with each failed deployment's cause.
    `on_progress` gets a line whenever an application's status or replica count changes."""
    deadline = time.monotonic() + timeout
    apps: dict = {}
    shown: dict[str, str] = {}
    unanswered: NoAnswer | None = None
    while time.monotonic() < deadline:
        try:
            apps, unanswered = applications(dashboard_url), None
        except NoAnswer as exc:  # on two overloaded cores the dashboard has let a read go unanswered: ask again
            unanswered = exc
            continue
        states = {name: (apps.get(name) or {}).get("status") for name in app_names}
        if on_progress:
            for name in app_names:
                line = progress_line(name, apps.get(name) or {})
                if shown.get(name) != line:
                    shown[name] = line
                    on_progress(line)
        failed = [failure_summary(n, apps[n]) for n, s in states.items() if s in TERMINAL_FAILURES]
        if failed:
            raise ServeDeployError("Serve could not deploy: " + " | ".join(failed))
        if all(s == "RUNNING" and replicas_ready(apps[n]) for n, s in states.items()):
            return apps
        time.sleep(0.1)  # a status read costs the dashboard about 10 ms
    summary = {n: (apps.get(n) or {}).get("status") for n in app_names}
    raise TimeoutError(f"Serve applications not RUNNING after {timeout}s: {summary}"
                       + (f" (the last read: {unanswered})" if unanswered else ""))


def delete_apps(dashboard_url: str) -> None:
    """Shut Serve down (DELETE /api/serve/applications/)."""
    _request("DELETE", dashboard_url.rstrip("/") + SERVE_API, timeout=120)
