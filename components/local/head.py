"""`python -m rayserve_pulumi.local.head '<options as JSON>'`: the local platform's Ray head, started the way
`ray start --head` starts one, without Ray's CLI.

Why not the CLI: importing `ray.scripts.scripts` costs about 1.1 CPU-seconds before the first Ray process
starts (these modules: 0.3), and the CLI always starts the Ray Client server (`--ray-client-server-port` cannot
be 0), one more Python process importing Ray and one more listener. One machine needs neither: nothing of the
stack uses Ray Client (`local.ray_client_port` turns it on). Nor Ray's autoscaler monitor (no nodes to scale)
or log monitor (no driver to stream logs to; they stay in the session's files), as KubeRay does when its
sidecar autoscales. VMs and EKS keep `ray start` (`ray_ops.head_args`).

The steps are `ray start --head`'s for these options (ray/scripts/scripts.py, Ray pinned in requirements.txt):
the node IP resolved as the CLI resolves it (127.0.0.1 becomes the machine's address, which drivers look
for), usage stats off, token auth per $RAY_AUTH_MODE, then `ray._private.node.Node(head=True)` with no
fate-sharing: the head outlives this process, in the session `procs.spawn` recorded. Every agent gets the
port the stack gives it (`AGENT_PORTS`). Two steps differ (`node_class`): the raylet starts while the
dashboard starts, and it is told the dashboard agent's HTTP port, so it waits for no agent. Every real-Ray
test of the local platform starts its head through here.

These are Ray's private APIs, and this module is the only one that uses them. When the installed Ray
does not have them as the pinned one does (`node_api_missing`), or $RAYSERVE_HEAD_LAUNCHER is `ray start`,
the head is started by Ray's own `ray start --head` instead (slower, and with its Ray Client server);
which one ran is written beside the PID file (`launcher_file`) and reported by `up`. That raylet still
waits up to 15 s for the dashboard agent to publish its HTTP port.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.errors import one_line
from rayserve_pulumi.constants import WORKER_PORTS
from rayserve_pulumi.node_agent import procs, ray_ops

__all__ = [
    "OPTIONS", "AGENT_PORTS", "LAUNCHER_ENV", "NODE_METHODS", "launcher_file", "node_api_missing", "taken_ports",
    "spawn", "start_with_cli", "launch", "start", "node_class", "main",
]

OPTIONS = ("node_ip", "gcs_port", "dashboard_host", "dashboard_port", "num_cpus", "num_gpus", "ray_client_port",
           "metrics_export_port", "dashboard_agent_listen_port", "dashboard_agent_grpc_port", "runtime_env_agent_port",
           "temp_dir")
# the agents' ports: given, so the raylet never waits for an agent to publish a port it picked (LocalSettings)
AGENT_PORTS = tuple(ray_ops.AGENT_PORT_FLAGS)
LAUNCHER_ENV = "RAYSERVE_HEAD_LAUNCHER"  # `ray start`: Ray's CLI even where the node API is there
NODE_API, RAY_START = "the node API", "ray start"
# what of ray._private.node.Node the launcher calls or overrides
NODE_METHODS = ("start_head_processes", "start_ray_processes", "start_raylet", "start_gcs_server",
                "_write_cluster_info_to_kv", "start_monitor", "start_ray_client_server", "start_api_server",
                "address_info")


def launcher_file(pid_file: Path) -> Path:
    """Where the head's launcher writes which way it started the head."""
    return Path(pid_file).with_name(Path(pid_file).stem + ".launcher")


def node_api_missing() -> Optional[str]:
    """What of the pinned Ray's private API the launcher needs the installed Ray lacks (None: all there)."""
    try:
        import ray._private.node
        import ray._private.parameter  # noqa: F401
        from ray._common.network_utils import build_address, is_localhost  # noqa: F401
        from ray._common.usage import usage_lib  # noqa: F401
        from ray._private import ray_constants, services  # noqa: F401
        from ray._private.authentication.authentication_token_setup import (  # noqa: F401
            ensure_token_if_auth_enabled, maybe_enable_token_auth_if_token_available,
        )
    except ImportError as exc:
        return str(exc)
    missing = [m for m in NODE_METHODS if not hasattr(ray._private.node.Node, m)]
    if missing:
        return f"ray._private.node.Node has no {', '.join(missing)}"
    if not hasattr(services, "start_ray_process") or not hasattr(ray_constants, "PROCESS_TYPE_RAYLET"):
        return "ray._private.services has no start_ray_process"
    return None


def taken_ports(opts: dict) -> list[str]:
    """`key port` for each port the head binds at its start that something already listens on (GCS, the Ray
    Client server and the agents: every interface; the dashboard: its host)."""
    wanted = {"gcs_port": "0.0.0.0", "dashboard_port": opts["dashboard_host"], "ray_client_port": "0.0.0.0",
              **dict.fromkeys(AGENT_PORTS, "0.0.0.0")}
    return ray_ops.taken_ports({key: (host, opts.get(key)) for key, host in wanted.items()})


def spawn(pid_file: Path, *, extra_env: dict, auth_mode: str, **opts) -> None:
    """Start the head with this interpreter's Ray, in a session of its own recorded in `pid_file`; `opts` are
    OPTIONS by name. Returns once its processes run (the dashboard answers soon after); the dashboard has
    `ray_ops.head_start_env`'s bound to come up. A port already taken fails at once, by name (Ray's GCS would
    give up only after 40 s, naming no port)."""
    if taken := taken_ports(opts):
        raise RuntimeError(f"cannot start the Ray head: {', '.join(taken)} already in use on this machine (another "
                           "Ray head or program); give rayserve:local free ports")
    start_env = ray_ops.head_start_env({**os.environ, **extra_env})  # the dashboard's bound (ray_ops)
    if auth_mode == "token":
        ray_ops.ensure_auth_token()
    env = ray_ops.ray_env({**ray_ops.auth_env(auth_mode), **extra_env, **start_env})
    request = {**{key: opts.get(key) for key in OPTIONS}, "launcher_file": str(launcher_file(pid_file))}
    procs.spawn([sys.executable, "-m", __name__, json.dumps(request)], Path(pid_file), env=env, name="the Ray head",
                secrets=[ray_ops.auth_token() or ""],
                timeout=ray_ops.head_start_wait_s(start_env))


def start_with_cli(opts: dict[str, Any]) -> str:
    """`ray start --head` for these options, with Ray's own CLI (the fallback); returns the dashboard's address.
    Ray's CLI always starts its Ray Client server (`ray_client_port`, else Ray's default port)."""
    args = ray_ops.head_args(gcs_port=opts["gcs_port"], dashboard_port=opts["dashboard_port"],
                             dashboard_host=opts["dashboard_host"], num_cpus=opts["num_cpus"],
                             num_gpus=opts["num_gpus"], node_ip=opts["node_ip"], temp_dir=opts["temp_dir"],
                             agent_ports={key: opts[key] for key in AGENT_PORTS})
    args += [f"--min-worker-port={WORKER_PORTS.start}", f"--max-worker-port={WORKER_PORTS.stop - 1}"]
    if opts.get("ray_client_port"):
        args.append(f"--ray-client-server-port={opts['ray_client_port']}")
    proc = subprocess.run([ray_ops.ray_executable(), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(([line for line in proc.stderr.splitlines() if line.strip()] or ["ray start failed"])[-1])
    return f"{opts['dashboard_host']}:{opts['dashboard_port']}"


def launch(opts: dict[str, Any]) -> tuple[str, str]:
    """Start the head the fastest way the installed Ray allows: (the dashboard's address, how it was started)."""
    forced = os.environ.get(LAUNCHER_ENV) == RAY_START
    missing = None if forced else node_api_missing()
    if forced or missing:
        return start_with_cli(opts), f"{RAY_START} ({'forced by $' + LAUNCHER_ENV if forced else missing})"
    return start(opts), NODE_API


def start(opts: dict[str, Any]) -> str:
    """Start the head's processes; returns the dashboard's address."""
    import ray._private.node
    import ray._private.parameter
    from ray._common.usage import usage_lib
    from ray._private import services
    from ray._private.authentication.authentication_token_setup import (
        ensure_token_if_auth_enabled, maybe_enable_token_auth_if_token_available,
    )

    usage_lib.set_usage_stats_enabled_via_env_var(False)  # `--disable-usage-stats`
    node_ip = services.resolve_ip_for_localhost(opts["node_ip"])
    params = ray._private.parameter.RayParams(
        node_ip_address=node_ip, node_name=node_ip, min_worker_port=WORKER_PORTS.start,
        max_worker_port=WORKER_PORTS.stop - 1,
        ray_client_server_port=opts["ray_client_port"], num_cpus=opts["num_cpus"], num_gpus=opts["num_gpus"],
        labels={}, huge_pages=False, dashboard_host=opts["dashboard_host"], dashboard_port=opts["dashboard_port"],
        dashboard_agent_listen_port=opts["dashboard_agent_listen_port"],
        metrics_export_port=opts["metrics_export_port"], metrics_agent_port=opts["dashboard_agent_grpc_port"],
        runtime_env_agent_port=opts["runtime_env_agent_port"],
        no_monitor=True, include_log_monitor=False, temp_dir=opts["temp_dir"])
    params.gcs_server_port = opts["gcs_port"]
    params.update_if_absent(redis_shard_ports=None, num_redis_shards=None, redis_max_clients=None)
    maybe_enable_token_auth_if_token_available()
    ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    node = node_class()(params, head=True, shutdown_at_exit=False, spawn_reaper=False)
    return node.address_info["webui_url"]


def node_class() -> type:
    """Ray's head `Node`, but the raylet does not wait for the dashboard.

    `ray start --head` starts the GCS, then the dashboard, waits until the dashboard has loaded its modules
    (about 2 s on two cores), and only then starts the raylet and its agents. Neither needs the other: both
    register with the GCS, and the one thing the raylet takes from the dashboard, its address (handed to
    workers), is known in advance, since the stack fixes the dashboard's host and port. So the dashboard
    starts in a thread and the raylet meanwhile; the head is up when both are, as with `ray start`. A
    dashboard that fails to start fails the head (the stack deploys through it), where Ray would go on
    without it."""
    import threading

    import ray._private.node
    from ray._common.network_utils import build_address, is_localhost

    class Node(ray._private.node.Node):
        def start_head_processes(self) -> None:  # Node.start_head_processes, the dashboard in a thread
            self.start_gcs_server()
            self._write_cluster_info_to_kv()
            if not self._ray_params.no_monitor:
                self.start_monitor()
            if self._ray_params.ray_client_server_port:
                self.start_ray_client_server()
            host = self._ray_params.dashboard_host  # the address the dashboard will record (dashboard/head.py)
            self._webui_url = build_address(host if is_localhost(host) else self._node_ip_address,
                                            self._ray_params.dashboard_port)
            self._dashboard_failure: list[BaseException] = []

            def start_dashboard() -> None:
                try:
                    self.start_api_server(include_dashboard=True, raise_on_failure=True)
                except BaseException as exc:  # re-raised on the main thread, in start_ray_processes
                    from ray._private import ray_constants
                    self._dashboard_failure.append(RuntimeError(
                        f"the Ray dashboard did not come up (it exited, or did not answer within "
                        f"{ray_constants.RAY_DASHBOARD_STARTUP_TIMEOUT_S} s): {one_line(exc)}"))

            self._dashboard_start = threading.Thread(target=start_dashboard, name="dashboard-start", daemon=True)
            self._dashboard_start.start()

        def start_raylet(self, *args, **kwargs):  # Node.start_raylet, told the agent's HTTP port
            port = self._ray_params.dashboard_agent_listen_port
            undo = ray_ops.raylet_told_listen_port(port) if port else None
            try:
                return super().start_raylet(*args, **kwargs)
            finally:
                if undo:
                    undo()

        def start_ray_processes(self) -> None:
            super().start_ray_processes()
            if getattr(self, "_dashboard_start", None) is not None:  # a head: wait for its dashboard too
                self._dashboard_start.join()
                if self._dashboard_failure:
                    raise self._dashboard_failure[0]

    return Node


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        opts = json.loads(args[0]) if len(args) == 1 else None
    except ValueError:
        opts = None
    if not isinstance(opts, dict) or set(opts) - {"launcher_file"} != set(OPTIONS):
        print(f"usage: python -m rayserve_pulumi.local.head '<JSON object with {', '.join(OPTIONS)}[, launcher_file]>'",
              file=sys.stderr)
        return 2
    try:
        dashboard, how = launch(opts)
        if opts.get("launcher_file"):
            Path(opts["launcher_file"]).write_text(how)
        print(f"Ray head started by {how}; dashboard {dashboard}")
    except Exception as exc:  # one line: procs.spawn hands it to the user as the cause
        print(one_line(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
