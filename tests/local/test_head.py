"""local.head, the local platform's Ray head launcher (`ray start --head` without Ray's CLI): its argument
checks, a port already taken failing at once by name, and the Ray Client server only when asked for."""
from __future__ import annotations

import json
import socket
import time

import pytest

from rayserve_pulumi.local import head
from rayserve_pulumi.node_agent import procs, ray_ops
from tests.helpers import free_port


def _opts(**overrides) -> dict:
    return {"node_ip": "127.0.0.1", "gcs_port": free_port(), "dashboard_host": "127.0.0.1",
            "dashboard_port": free_port(), "num_cpus": 1, "num_gpus": 0, "ray_client_port": None, **overrides}


@pytest.mark.parametrize("argv", [[], ["not json"], ["[1]"], [json.dumps({"node_ip": "127.0.0.1"})],
                                  [json.dumps({**_opts(), "extra": 1})]])
def test_the_launcher_refuses_anything_but_its_options(argv, capsys):
    assert head.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: python -m rayserve_pulumi.local.head")


@pytest.mark.parametrize("key", ["gcs_port", "dashboard_port", "ray_client_port"])
def test_a_port_already_listened_on_fails_at_once_by_name(key, tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        opts = _opts(**{key: busy.getsockname()[1]})
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=rf"cannot start the Ray head: {key} {opts[key]} already in use"):
            head.spawn(tmp_path / "head.pid", extra_env={}, auth_mode="token", **opts)
    assert time.monotonic() - start < 5 and not (tmp_path / "head.pid").exists()  # nothing was started


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


@pytest.mark.ray
def test_the_ray_client_server_runs_only_when_a_port_is_given(tmp_path):
    client = free_port()
    opts = _opts(ray_client_port=client)
    pid_file = tmp_path / "head.pid"
    try:
        head.spawn(pid_file, extra_env={}, auth_mode="token", **opts)
        ray_ops.wait_dashboard(f"http://127.0.0.1:{opts['dashboard_port']}")
        commands = [open(f"/proc/{pid}/cmdline", "rb").read() for pid in procs.members(procs.read(pid_file)["sid"])]
        assert any(b"ray.util.client.server" in c and f"--port={client}".encode() in c for c in commands), commands
        with socket.create_connection(("127.0.0.1", client), timeout=10):
            pass  # it listens
    finally:
        ray_ops.stop(pid_file)
