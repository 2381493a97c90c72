"""The local platform's provider against a real local Ray, checked over HTTP."""
from __future__ import annotations

import ipaddress
import json
import os

import pytest
import requests

from rayserve_pulumi.config.serve import serve_port
from rayserve_pulumi.constants import CLIENT_PORT
from rayserve_pulumi.local.lifecycle import IPC_CONNECT_RETRY, head_pid_file
from rayserve_pulumi.node_agent import procs, ray_ops
from tests.conftest import with_override
from tests.helpers import post, replica_pids

pytestmark = pytest.mark.ray


def test_outputs_name_every_app_with_its_route(local_serve):
    _, result = local_serve
    urls = result.outs["app_urls"]
    assert set(urls) == {"fruit", "calc", "summarize_translate"}
    assert urls["fruit"].endswith("/fruit") and urls["calc"].endswith("/calc")
    assert set(ray_ops.status(result.outs["dashboard_url"])["applications"]) == set(urls)


def test_dashboard_requires_the_ray_auth_token(local_serve):
    anonymous = requests.get(local_serve[1].outs["dashboard_url"] + "/api/serve/applications/", timeout=10)
    assert anonymous.status_code == 401


def test_fruit_and_calc_answer_over_http(local_serve):
    urls = local_serve[1].outs["app_urls"]
    assert post(urls["fruit"], ["MANGO", 2]) == 6
    assert post(urls["fruit"], ["PEAR", 1]) == 4
    assert post(urls["calc"], ["MUL", 3]) == "15 pizzas please!"
    assert post(urls["calc"], ["ADD", 3]) == "6 pizzas please!"


def test_user_config_change_applies_in_place(local_serve):
    provider, result = local_serve
    dash = result.outs["dashboard_url"]
    pids_before = replica_pids(dash, "fruit", "MangoStand")
    news = with_override(result.outs, "fruit", "MangoStand", user_config={"price": 5})
    diff = provider.diff(result.id, result.outs, news)
    assert diff.changes and not diff.replaces
    updated = provider.update(result.id, result.outs, news).outs
    try:
        assert post(updated["app_urls"]["fruit"], ["MANGO", 2]) == 10
        assert replica_pids(dash, "fruit", "MangoStand") == pids_before
        assert updated["config_hash"] != result.outs["config_hash"]
    finally:
        provider.update(result.id, updated, result.outs)  # the session's cluster goes back to the quick start


def test_num_replicas_change_scales_deployment(local_serve):
    provider, result = local_serve
    news = with_override(result.outs, "calc", "Adder", num_replicas=2)
    provider.update(result.id, result.outs, news)
    try:
        assert len(replica_pids(result.outs["dashboard_url"], "calc", "Adder")) == 2
        assert post(result.outs["app_urls"]["calc"], ["ADD", 3]) == "6 pizzas please!"
    finally:
        provider.update(result.id, news, result.outs)


def _listeners(pids: list[int]) -> dict[int, set[str]]:
    """Listening TCP port -> the addresses it is bound to, for sockets these processes hold (/proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: dict[int, set[str]] = {}
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = fields[1].split(":")
            raw = bytes.fromhex(addr)
            host = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4)))
            if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped:
                host = host.ipv4_mapped
            found.setdefault(int(port, 16), set()).add(str(host))
    return found


def test_the_listeners_this_package_configures_follow_local_host(local_serve):
    """Serve's proxy and the dashboard listen on local.host (127.0.0.1) only. Ray 2.60 decides for its own
    servers: GCS, raylet, object manager and agents bind every interface; token auth guards them. The test
    prints that list. No Ray Client server listens (local.ray_client_port is unset)."""
    _, result = local_serve
    sid = procs.read(head_pid_file(result.outs))["sid"]
    listeners = _listeners(procs.members(sid))
    config = json.loads(result.outs["serve_config_json"])
    assert config["http_options"]["host"] == "127.0.0.1"
    ours = {serve_port(config): "Serve", int(result.outs["dashboard_port"]): "dashboard"}
    for port, what in ours.items():
        assert listeners.get(port) == {"127.0.0.1"}, (what, port, listeners.get(port))
    assert CLIENT_PORT not in listeners
    others = {p: sorted(h) for p, h in listeners.items() if h != {"127.0.0.1"}}
    print(f"listeners Ray binds beyond local.host: {others}")  # printed for the README's honest list


def test_the_local_head_runs_no_autoscaler_log_monitor_or_ray_client_server(local_serve):
    """`local` starts Ray without its autoscaler monitor and log monitor (nothing to scale, no driver to stream
    to) and without the Ray Client server (nothing uses it; `ray start` cannot leave it out: local.head starts
    the head instead); the head's session holds Ray's core processes and Serve's, not those three."""
    _, result = local_serve
    sid = procs.read(head_pid_file(result.outs))["sid"]
    commands = [" ".join(argv) for argv in procs.commands(sid).values()]
    assert any("gcs_server" in c for c in commands) and any("raylet" in c for c in commands), commands
    assert not [c for c in commands if "autoscaler/_private/monitor.py" in c or "log_monitor.py" in c
                or "ray.util.client.server" in c], commands


def test_the_raylets_start_up_settings_reach_it(local_serve):
    """Ray's own cap, min(cores, num_cpus), is 2 on a 2-core machine; the local head's raylet runs with the
    stack's num_cpus instead (README "Performance")."""
    _, result = local_serve
    raylets = [pid for pid, argv in procs.commands(procs.read(head_pid_file(result.outs))["sid"]).items()
               if argv and argv[0].endswith("/raylet")]
    assert len(raylets) == 1
    environ = dict(entry.split(b"=", 1) for entry in open(f"/proc/{raylets[0]}/environ", "rb").read().split(b"\0")
                   if b"=" in entry)
    assert environ[b"RAY_worker_maximum_startup_concurrency"] == str(result.outs["num_cpus"]).encode()
    for key, value in IPC_CONNECT_RETRY.items():  # and retries a local socket not there yet every 100 ms
        assert environ[key.encode()] == value.encode()
