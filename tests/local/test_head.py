"""local.head, the local platform's Ray head launcher (`ray start --head` without Ray's CLI): its argument
checks, a port already taken failing at once by name, and the Ray Client server only when asked for."""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from rayserve_pulumi.local import head
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.observability import prometheus
from tests.helpers import free_port, slow_agents_env


def _opts(**overrides) -> dict:
    return {"node_ip": "127.0.0.1", "gcs_port": free_port(), "dashboard_host": "127.0.0.1",
            "dashboard_port": free_port(), "num_cpus": 1, "num_gpus": 0, "ray_client_port": None,
            **{key: free_port() for key in head.AGENT_PORTS}, **overrides}


@pytest.mark.parametrize("argv", [[], ["not json"], ["[1]"], [json.dumps({"node_ip": "127.0.0.1"})],
                                  [json.dumps({**_opts(), "extra": 1})]])
def test_the_launcher_refuses_anything_but_its_options(argv, capsys):
    assert head.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: python -m rayserve_pulumi.local.head")


@pytest.mark.parametrize("key", ["gcs_port", "dashboard_port", "ray_client_port", *head.AGENT_PORTS])
def test_a_port_already_listened_on_fails_at_once_by_name(key, tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        opts = _opts(**{key: busy.getsockname()[1]})
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"cannot start the Ray head: {key} {opts[key]} already in use"):
            head.spawn(tmp_path / "head.pid", extra_env={}, auth_mode="token", **opts)
    assert time.monotonic() - start < 5 and not (tmp_path / "head.pid").exists()  # nothing was started


@pytest.mark.parametrize("environ, extra, bound", [(None, None, ray_ops.DASHBOARD_START_S), ("90", None, 90),
                                                  ("90", "0", 0)])
def test_the_dashboard_gets_its_bound_and_the_launcher_a_longer_wait(tmp_path, monkeypatch, environ, extra, bound):
    """Ray's own 60 s failed a head on a busy machine (ray_ops.DASHBOARD_START_S); a bound in this process's
    environment is kept, and the stack's extra environment wins over both."""
    spawned = {}
    monkeypatch.setattr(procs, "spawn", lambda args, pid_file, **kwargs: spawned.update(kwargs))
    if environ is None:
        monkeypatch.delenv(ray_ops.DASHBOARD_START_ENV, raising=False)
    else:
        monkeypatch.setenv(ray_ops.DASHBOARD_START_ENV, environ)
    head.spawn(tmp_path / "head.pid", extra_env={ray_ops.DASHBOARD_START_ENV: extra} if extra else {},
               auth_mode="disabled", **_opts())
    assert spawned["env"][ray_ops.DASHBOARD_START_ENV] == str(bound)
    assert spawned["timeout"] == bound + ray_ops.NODE_START_MARGIN_S


def test_a_port_left_in_time_wait_is_free():
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end of the port stays in TIME_WAIT
        client.close()
    assert head.taken_ports(_opts(gcs_port=port)) == []


@contextmanager
def _spawned(pid_file, opts: dict, extra_env: dict):
    """A head started with `opts` in a Ray temp dir of its own (not the machine's /tmp/ray, which a developer's
    own Ray uses), stopped and its temp dir removed afterwards."""
    temp_dir = prometheus.ray_temp_dir(str(pid_file))
    try:
        head.spawn(pid_file, extra_env=extra_env, auth_mode="token", **{**opts, "temp_dir": temp_dir})
        yield
    finally:
        ray_ops.stop(pid_file)
        prometheus.remove_ray_temp_dir(temp_dir)


@pytest.mark.ray
def test_the_ray_client_server_runs_only_when_a_port_is_given(tmp_path):
    client = free_port()
    opts = _opts(ray_client_port=client)
    pid_file = tmp_path / "head.pid"
    with _spawned(pid_file, opts, {}):
        ray_ops.wait_dashboard(f"http://127.0.0.1:{opts['dashboard_port']}")
        commands = procs.commands(procs.read(pid_file)["sid"]).values()
        assert any("ray.util.client.server" in c and f"--port={client}" in c for c in commands), commands
        with socket.create_connection(("127.0.0.1", client), timeout=10):
            pass  # it listens
        assert head.launcher_file(pid_file).read_text() == head.NODE_API  # the pinned Ray: the fast path ran


def _listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.mark.ray
def test_a_head_whose_agents_start_slowly_still_starts(tmp_path):
    """With Ray's random agent ports this head fails ("The current node timed out during startup"): its raylet
    stops waiting for the agents' port files after 15 s. With the stack's ports it does not wait for them."""
    opts, pid_file = _opts(), tmp_path / "head.pid"
    env = slow_agents_env(tmp_path / "slow", 20)
    with _spawned(pid_file, opts, env):
        dashboard = f"http://127.0.0.1:{opts['dashboard_port']}"
        ray_ops.wait_dashboard(dashboard)
        raylet = [argv for argv in procs.commands(procs.read(pid_file)["sid"]).values()
                  if argv and "raylet" in argv[0]]
        assert len(raylet) == 1
        args = raylet[0]
        node_ip = next(a.split("=", 1)[1] for a in args if a.startswith("--node_ip_address="))
        for flag, key in [("--metrics-agent-port", "dashboard_agent_grpc_port"),
                          ("--dashboard_agent_listen_port", "dashboard_agent_listen_port"),
                          ("--metrics_export_port", "metrics_export_port"),
                          ("--runtime_env_agent_port", "runtime_env_agent_port")]:
            assert f"{flag}={opts[key]}" in args, (flag, args)
        for key in head.AGENT_PORTS:  # the agents came up after all, on the stack's ports (the node's address)
            assert _listening(node_ip, opts[key], timeout=90), key
        nodes = ray_ops.api_get(dashboard, "/nodes?view=summary")["data"]["summary"]
        assert [n["raylet"]["state"] for n in nodes] == ["ALIVE"]


def test_the_pinned_ray_has_the_private_api_the_launcher_uses():
    assert head.node_api_missing() is None


def test_a_ray_without_it_is_noticed(monkeypatch):
    import ray._private.node

    monkeypatch.delattr(ray._private.node.Node, "start_head_processes")
    assert head.node_api_missing() == "ray._private.node.Node has no start_head_processes"


@pytest.mark.parametrize("forced, missing, expected", [
    (False, None, head.NODE_API),
    (True, None, f"{head.RAY_START} (forced by ${head.LAUNCHER_ENV})"),
    (False, "No module named 'ray._private.node'", f"{head.RAY_START} (No module named 'ray._private.node')"),
])
def test_the_launcher_falls_back_to_ray_start(monkeypatch, forced, missing, expected):
    monkeypatch.setattr(head, "node_api_missing", lambda: missing)
    monkeypatch.setattr(head, "start", lambda opts: "node")
    monkeypatch.setattr(head, "start_with_cli", lambda opts: "cli")
    if forced:
        monkeypatch.setenv(head.LAUNCHER_ENV, head.RAY_START)
    else:
        monkeypatch.delenv(head.LAUNCHER_ENV, raising=False)
    assert head.launch(_opts()) == ("node" if expected == head.NODE_API else "cli", expected)


@pytest.mark.ray
def test_the_ray_start_fallback_starts_a_head_that_serves(tmp_path):
    opts = _opts(ray_client_port=free_port())  # Ray's CLI always starts its Ray Client server
    pid_file = tmp_path / "head.pid"
    with _spawned(pid_file, opts, {head.LAUNCHER_ENV: head.RAY_START}):
        ray_ops.wait_dashboard(f"http://127.0.0.1:{opts['dashboard_port']}")
        assert head.launcher_file(pid_file).read_text() == f"{head.RAY_START} (forced by ${head.LAUNCHER_ENV})"
        nodes = ray_ops.api_get(f"http://127.0.0.1:{opts['dashboard_port']}", "/nodes?view=summary")["data"]["summary"]
        assert [n["raylet"]["state"] for n in nodes] == ["ALIVE"]


class _Params:
    no_monitor, ray_client_server_port, dashboard_host, dashboard_port = True, None, "127.0.0.1", 8265


def _head_node(monkeypatch, events: list, dashboard, on_raylet=lambda: None):
    """A head `Node` of node_class() with Ray's own process starters replaced by recorders: `dashboard` plays
    start_api_server (in the launcher's dashboard thread); the raylet's start is recorded, then `on_raylet`."""
    import ray._private.node

    monkeypatch.setattr(ray._private.node.Node, "start_ray_processes",
                        lambda self: (events.append("raylet"), on_raylet()))
    node = object.__new__(head.node_class())
    node._ray_params, node._node_ip_address = _Params(), "10.0.0.5"
    node.start_gcs_server = lambda: events.append("gcs")
    node._write_cluster_info_to_kv = lambda: None
    node.start_api_server = dashboard
    return node


def test_the_raylet_starts_while_the_dashboard_starts(monkeypatch):
    events, loaded = [], threading.Event()

    def dashboard(**kwargs):
        assert kwargs == {"include_dashboard": True, "raise_on_failure": True}
        events.append("dashboard starting")
        # still loading its modules until the raylet has started: a raylet waiting for it never would
        assert loaded.wait(10), "the raylet waited for the dashboard"
        events.append("dashboard up")

    node = _head_node(monkeypatch, events, dashboard, on_raylet=loaded.set)
    node.start_head_processes()
    assert node._webui_url == "127.0.0.1:8265"  # handed to the raylet before the dashboard records it
    node.start_ray_processes()
    # and the head is up only once its dashboard is
    assert events == ["gcs", "dashboard starting", "raylet", "dashboard up"]


def test_a_dashboard_that_fails_fails_the_head(monkeypatch):
    def dashboard(**kwargs):
        raise Exception("Failed to start the dashboard, return code 1")

    node = _head_node(monkeypatch, [], dashboard)
    node.start_head_processes()
    with pytest.raises(Exception, match="Failed to start the dashboard"):
        node.start_ray_processes()


def test_the_dashboard_address_handed_to_the_raylet_is_the_one_it_records(monkeypatch):
    node = _head_node(monkeypatch, [], lambda **kwargs: None)
    node._ray_params.dashboard_host = "0.0.0.0"  # every interface: the dashboard records the node's address
    node.start_head_processes()
    node.start_ray_processes()
    assert node._webui_url == "10.0.0.5:8265"


def test_the_launcher_reports_a_multi_line_failure_on_one_line_with_its_cause(monkeypatch, capsys):
    """Ray's dashboard failure is a message that starts with a newline and ends with the log line saying why:
    the launcher's one line (what procs.spawn hands the user) keeps its first and last lines."""
    def fail(opts):
        raise Exception("\nThe last 20 lines of /x/dashboard.log (it contains the error message):\nstarting\n"
                        "OSError: [Errno 98] address already in use\n")

    monkeypatch.setattr(head, "launch", fail)
    assert head.main([json.dumps(_opts(temp_dir="/x"))]) == 1
    assert capsys.readouterr().err == ("Exception: The last 20 lines of /x/dashboard.log (it contains the error "
                                       "message): … OSError: [Errno 98] address already in use\n")


@pytest.mark.ray
def test_a_dashboard_that_does_not_come_up_fails_the_head_naming_it(tmp_path):
    """Ray waits RAY_DASHBOARD_STARTUP_TIMEOUT_S for the dashboard (0 here: it cannot be up): the head fails
    with one line naming the dashboard and Ray's cause, and nothing of it keeps running."""
    pid_file = tmp_path / "head.pid"
    with pytest.raises(RuntimeError) as failed:
        with _spawned(pid_file, _opts(), {"RAY_DASHBOARD_STARTUP_TIMEOUT_S": "0"}):
            pass
    message = str(failed.value)
    assert message.startswith("the Ray head failed (1): RuntimeError: the Ray dashboard did not come up (it exited, "
                              "or did not answer within 0 s): Exception: ") and "\n" not in message, message
    assert message.split("Exception: ", 1)[1].strip(), message  # Ray's cause, not an empty line
    assert not procs.running(pid_file)
