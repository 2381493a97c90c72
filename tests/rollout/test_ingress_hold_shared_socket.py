"""rollout.ingress_hold while two HAProxy processes share the admin socket, as they do for a moment after a
reload's take-over (`-x`: the new process takes over the old one's listeners, the admin socket's included, and
the old one stops accepting only once it has handled the new one's signal). Which process takes a connection
is then up to the kernel, so a stand-in socket decides it here, connection by connection, and each process
keeps its own server states. The replies are HAProxy 2.8's (the binary Serve runs) to the same commands: an
empty line for a state set, `No such server.` and an empty line for an unknown one, then `show info`'s block.
The real reload, without choosing the connections: test_ingress_hold.py."""
from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from rayserve_pulumi.rollout import ingress_hold

OLD, NEW = "100", "200"
SERVER = "SERVE_REPLICA_shop-Echo-a"


class SharedSocket:
    """Two HAProxy processes' runtime API behind one Unix socket: `route(line)` names the process that takes the
    connection carrying `line`; each process has backend http-shop with the replica and Serve's fallback proxy."""

    def __init__(self, path: str, route: Callable[[str], str]):
        self.route = route
        self.states = {OLD: {SERVER: "UP", "SERVE_PROXY_ACTOR-fallback": "UP"}}
        self.sets: list[tuple[str, str, str]] = []  # (process, server, state) of each state set, in order
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def take_over(self, saved: dict[str, str]) -> None:
        """The new process starts with the states saved before it (Ray's server-state file)."""
        with self.lock:
            self.states[NEW] = dict(saved)

    def state(self, process: str) -> str:
        with self.lock:
            return self.states[process][SERVER]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile().readline().strip()
                conn.sendall(self._answer(self.route(line), line).encode())

    def _answer(self, process: str, line: str) -> str:
        out = []
        for cmd in line.split(";"):
            words = cmd.split()
            if words[:2] == ["show", "info"]:
                out.append(f"Name: HAProxy\nVersion: 2.8.25\nPid: {process}\nUptime_sec: 1\n\n")
            elif words[:2] == ["show", "stat"]:
                with self.lock:
                    rows = "".join(f"http-shop,{name},{status},{int(name.startswith('SERVE_PROXY'))},0,"
                                   f"127.0.0.1:1\n" for name, status in self.states[process].items())
                out.append(f"# pxname,svname,status,bck,scur,addr\n{rows}\n")
            elif words[:2] == ["set", "server"] and words[3] == "state":
                backend, server = words[2].split("/")
                with self.lock:
                    if backend != "http-shop" or server not in self.states[process]:
                        out.append("No such server.\n\n")
                        continue
                    self.states[process][server] = {"maint": "MAINT", "ready": "UP"}[words[4]]
                    self.sets.append((process, server, words[4]))
                out.append("\n")
            else:
                out.append("Unknown command.\n\n")
        return "".join(out)

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def shared_socket(route: Callable[[str], str]):
    with tempfile.TemporaryDirectory(prefix="hold-") as folder:  # short: a Unix socket path has ~100 bytes
        shared = SharedSocket(str(Path(folder, "admin.sock")), route)
        try:
            yield shared, str(Path(folder, "admin.sock"))
        finally:
            shared.close()
            for keeper in list(ingress_hold.Keeper._live):
                keeper.stop()


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"not within 10 s: {what}"
        time.sleep(0.01)


class AfterTakeOver:
    """Before the take-over the old process takes every connection; after it, the new one answers `show info`
    alone, and the first `set server` after the take-over reaches the old one, which still accepts."""

    def __init__(self):
        self.taken_over = False
        self.misrouted = 0

    def __call__(self, line: str) -> str:
        if not self.taken_over:
            return OLD
        if line.startswith("set server") and not self.misrouted:
            self.misrouted += 1
            return OLD
        return NEW


def test_a_hold_renewed_on_the_process_going_away_is_set_again_on_the_new_one():
    """The Keeper sees the new process answer, sets the hold again, and that connection is taken by the old
    process: the new one would keep sending the route's requests to the moving replica. The state is set again
    until the new process has applied it, and that counts as one renewal."""
    route = AfterTakeOver()
    with shared_socket(route) as (shared, sock):
        saved = dict(shared.states[OLD])  # Ray's reload saves the states first: the replica still UP
        said = []
        held = ingress_hold.hold([sock], ["shop"], said.append)
        assert held == [ingress_hold.Held(sock, "http-shop", SERVER)] and said == []
        assert shared.sets == [(OLD, SERVER, "maint")]
        shared.take_over(saved)  # the new process loads the states saved before the hold
        route.taken_over = True
        _until(lambda: shared.state(NEW) == "MAINT", "the new process has the replica held")
        _until(lambda: held.keeper.renewed == 1, "the keeper counted the renewal")
        assert shared.sets == [(OLD, SERVER, "maint"), (OLD, SERVER, "maint"), (NEW, SERVER, "maint")]
        assert route.misrouted == 1
        ingress_hold.release(held, said.append)
        assert shared.state(NEW) == "UP" and said == []


def test_a_process_that_has_the_state_is_not_set_again_while_the_two_share_the_socket():
    """Once both processes have the hold, `show info` answered by either in turn sets nothing more."""
    asked = {"n": 0, "taken_over": False}

    def in_turn(line: str) -> str:
        if not asked["taken_over"]:
            return OLD
        if line.startswith("set server"):
            return NEW
        asked["n"] += 1
        return (OLD, NEW)[asked["n"] % 2]

    with shared_socket(in_turn) as (shared, sock):
        saved = dict(shared.states[OLD])
        held = ingress_hold.hold([sock], ["shop"], print)
        shared.take_over(saved)
        asked["taken_over"] = True
        _until(lambda: shared.state(NEW) == "MAINT", "the new process has the replica held")
        then = asked["n"]
        _until(lambda: asked["n"] >= then + 20, "the keeper asked the socket 20 more times")
        assert shared.sets == [(OLD, SERVER, "maint"), (NEW, SERVER, "maint")] and held.keeper.renewed == 1
