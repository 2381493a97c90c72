"""Keeping Serve's HAProxy ingress off an application's replicas while the rollout moves its route.

Under Serve's HAProxy ingress (Ray 2.60) HAProxy sends a route's requests straight to its application's
ingress replicas, and each replica checks the route it serves: when a deploy moves the application to its
hidden route, what HAProxy sends it before its own reload answers 404 (`bench.handoff_bench`). So before
such a deploy the rollout puts those servers in maintenance through HAProxy's runtime API: they take no
new request, the ones in flight finish, and the backend's backup server, Serve's fallback proxy, takes the
route's requests and routes them by Serve's own table (to the application before the move, to the splitter
after). Once every ingress routes as the deploy says and each held replica says it serves its new route (its
`/-/routes`: a replica learns its route on its own, after Serve's proxies and RUNNING), the servers are made
ready again. Ray saves HAProxy's server states before each reload and the new process loads them, so a reload
keeps them held; but a state set between that save and the new process taking over the admin socket would
be lost (seen under load: a hold set 20 ms before a reload was not in the new process, which sent requests to
the moved replica: 404s), so while held, and for a while after release, `Keeper` sets the state again on
each new process, until the process that answers the set is the new one (the one going away still shares
the admin socket for a moment).

Ray's layout is private to Ray 2.60: one admin socket per node in the folder of
`RAY_SERVE_HAPROXY_SOCKET_PATH` (`<folder>/<node id>/<name>`) and one backend per application, `http-<app>`.
Where it does not hold (no socket, no such backend, no backup server up to take the requests), nothing is
held and the hand-over goes on as without, said in one line.
"""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple

__all__ = ["SOCKET_ENV", "node_sockets", "backend_name", "command", "Held", "Holding", "Keeper", "hold", "wait_routed",
           "release"]

SOCKET_ENV = "RAY_SERVE_HAPROXY_SOCKET_PATH"  # the admin socket path Ray gives Serve's HAProxy
DRAIN_TIMEOUT_S = 10  # how long the held servers' requests in flight may take to finish before the deploy
BACKUP_TIMEOUT_S = 5  # how long a backend's backup server may take to be up before its route is moved unheld
ROUTED_TIMEOUT_S = 10  # how long a held replica may take to serve its new route before it is released anyway
KEEP_PERIOD_S = 0.02  # how often Keeper asks which HAProxy process answers each socket
RELEASED_KEEP_S = 5  # how long after release Keeper still makes a new process's servers ready (a whole reload,
# Ray's serve_haproxy_update_latency_s, took under 2 s in all 16 measured here)


def node_sockets(template: str, node_ids: Iterable[str]) -> list[str]:
    """The admin sockets of these nodes' HAProxy that are on this host (Ray puts each node's in a folder
    named by its ID beside the configured path): only this cluster's, never another head's on the machine."""
    folder, name = os.path.split(template)
    return [str(p) for node in sorted(set(node_ids)) if (p := Path(folder, node, name)).is_socket()]


def backend_name(app: str) -> str:
    """The HAProxy backend of an application's HTTP route, as Ray 2.60 names it."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"http-{app}".replace("#", "-").replace("/", "."))


def command(sock: str, line: str, timeout: float = 5) -> str:
    """One HAProxy runtime API command on the admin socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(sock)
        conn.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _stats(sock: str, backend: str) -> list[dict]:
    """`show stat` rows of one backend's servers (not its BACKEND summary)."""
    return _server_rows(command(sock, "show stat"), backend)


def _server_rows(answer: str, backend: str) -> list[dict]:
    """The rows of one backend's servers in a `show stat` answer."""
    lines = answer.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise OSError(f"HAProxy's show stat answered {lines[:1]}")
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    return [r for r in rows if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")]


class Held(NamedTuple):
    socket: str
    backend: str
    server: str


def _set(held: Iterable[Held], state: str, gone_ok: bool = False) -> dict[Held, str]:
    """Each server to `state`; the ID of the HAProxy process that applied it, per server. Asked in the same
    connection (`set server ...;show info`): for a moment after a reload's take-over the process going away
    still shares the admin socket, and a state set on it is lost with it. Made ready, a server HAProxy no longer
    has is done: Ray reloaded HAProxy without it, and a later reload takes the states of the servers HAProxy
    then has, so it comes back ready. `gone_ok`: so is one held again (Keeper)."""
    applied = {}
    for h in held:
        said, info = _split_info(command(h.socket, f"set server {h.backend}/{h.server} state {state};show info"))
        if said and not ((state == "ready" or gone_ok) and said.startswith("No such server")):
            raise OSError(f"HAProxy refused {h.backend}/{h.server} state {state}: {said.splitlines()[0]}")
        applied[h] = _info_pid(info)
    return applied


def _split_info(answer: str) -> tuple[str, str]:
    """A command's answer followed by `show info`'s, split where the info begins (its first line is `Name:`)."""
    found = re.search(r"^Name:", answer, re.M)
    return (answer, "") if found is None else (answer[:found.start()].strip(), answer[found.start():])


def _pid(sock: str) -> str:
    """The ID of the HAProxy process answering `sock` now ("" if none answers)."""
    try:
        return _info_pid(command(sock, "show info", timeout=2))
    except OSError:
        return ""


def _info_pid(answer: str) -> str:
    """The process ID in a `show info` answer ("" if it has none)."""
    return next((line.split(":", 1)[1].strip() for line in answer.splitlines() if line.startswith("Pid:")), "")


class Keeper:
    """Sets `state` again on the servers of each socket whenever a process answers it that has not applied the
    state yet (`applied`: the process that applied it to each server first), until stopped or, with `for_s`,
    that long. A new Keeper of a server stops the one before (a server released, then held again within
    RELEASED_KEEP_S)."""

    _live: list["Keeper"] = []
    _lock = threading.Lock()

    def __init__(self, held: list[Held], state: str, applied: Mapping[Held, str], for_s: float | None = None):
        self.held, self.state = list(held), state
        self.done = {h: {applied[h]} for h in self.held}  # the processes that have each server in `state`
        self.deadline = None if for_s is None else time.monotonic() + for_s
        self.renewed = 0  # how many times a new process got the state again
        self._stop = threading.Event()
        Keeper.stop_for(self.held)
        with Keeper._lock:
            Keeper._live.append(self)
        self._thread = threading.Thread(target=self._run, name=f"haproxy-keep-{state}", daemon=True)
        self._thread.start()

    @staticmethod
    def stop_for(held: Iterable[Held]) -> None:
        """Stop every Keeper of any of these servers (before their state is set otherwise)."""
        with Keeper._lock:
            before = [k for k in Keeper._live if set(k.held) & set(held)]
        for k in before:
            k.stop()

    def _run(self) -> None:
        sockets = sorted({h.socket for h in self.held})
        while not self._stop.wait(KEEP_PERIOD_S):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.stop()
                return
            for sock in sockets:
                now = _pid(sock)
                stale = [h for h in self.held if h.socket == sock and now not in self.done[h]]
                if not now or not stale:
                    continue
                try:
                    applied = _set(stale, self.state, gone_ok=True)
                except OSError:
                    continue  # the new process is not answering yet: next round
                for h, pid in applied.items():  # the process going away may have taken some: asked again next round
                    self.done[h].add(pid)
                if all(now in self.done[h] for h in stale):
                    self.renewed += 1

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with Keeper._lock:
            Keeper._live = [k for k in Keeper._live if k is not self]


def _in_flight(held: list[Held]) -> int:
    """Requests the held servers are serving right now."""
    backends = {(h.socket, h.backend) for h in held}
    return sum(int(r.get("scur") or 0) for sock, backend in backends for r in _stats(sock, backend)
               if Held(sock, backend, r["svname"]) in held)


def _servers(sock: str, backend: str, backup_timeout: float) -> tuple[list[str], str]:
    """A backend's primary servers and its backup's status, waiting up to `backup_timeout` for the backup to be
    up (a reload can have just added it, its first check pending)."""
    deadline = time.monotonic() + backup_timeout
    while True:
        rows = _stats(sock, backend)
        backup = next((r.get("status", "") for r in rows if r.get("bck") == "1"), "")
        if backup.startswith("UP") or not backup or time.monotonic() > deadline:
            return [r["svname"] for r in rows if r.get("bck") == "0"], backup
        time.sleep(0.1)


class Holding(list):
    """The held servers (Held), and while they are held, the Keeper keeping them so through reloads."""

    keeper: Keeper | None = None


def hold(sockets: list[str], apps: Iterable[str], report: Callable[[str], None],
         drain_timeout: float = DRAIN_TIMEOUT_S, backup_timeout: float = BACKUP_TIMEOUT_S) -> Holding:
    """Put the ingress servers of `apps` in maintenance on each HAProxy, where a backup server is up to take
    their requests, and wait until their requests in flight have finished. What was held (for `release`), kept
    held through HAProxy's reloads until then (its Keeper runs in this process: keep it alive until then)."""
    held, applied = Holding(), {}
    try:
        for sock in sockets:
            for app in apps:
                backend = backend_name(app)
                primary, backup = _servers(sock, backend, backup_timeout)
                if not primary:  # HAProxy sends that route nowhere directly (yet): nothing to hold
                    continue
                if not backup.startswith("UP"):
                    report(f"rollout: HAProxy at {sock} has no backup server up for {app}'s route "
                           f"({backup or 'none'}); not holding it")
                    continue
                batch = [Held(sock, backend, s) for s in primary]
                Keeper.stop_for(batch)  # one still keeping them ready from a release just before
                applied.update(_set(batch, "maint"))
                held += batch
        if held:
            held.keeper = Keeper(held, "maint", applied)
        deadline = time.monotonic() + drain_timeout
        while _in_flight(held):
            if time.monotonic() > deadline:
                report(f"rollout: requests still in flight on held HAProxy servers after {drain_timeout:g} s")
                break
            time.sleep(0.05)
    except OSError as exc:
        report(f"rollout: HAProxy's runtime API: {exc}; moving the routes without holding them")
        release(held, report)
        return Holding()
    return held


def _addresses(held: list[Held]) -> dict[Held, str]:
    """Each held server's address (host:port) as HAProxy has it; one HAProxy no longer has is left out."""
    found = {}
    for sock, backend in sorted({(h.socket, h.backend) for h in held}):
        for row in _stats(sock, backend):
            server = Held(sock, backend, row["svname"])
            if server in held and row.get("addr"):
                found[server] = row["addr"]
    return found


def _serves(address: str, route: str) -> bool:
    """Whether the replica at `address` says it serves `route`: Serve's direct ingress answers `/-/routes` with
    the route it serves, without running the application's code."""
    try:
        with urllib.request.urlopen(f"http://{address}/-/routes", timeout=2) as answer:
            return route in json.loads(answer.read())
    except (OSError, ValueError):
        return False


def wait_routed(held: list[Held], routes: Mapping[str, str], report: Callable[[str], None],
                timeout: float = ROUTED_TIMEOUT_S) -> None:
    """Until each held server of a backend in `routes` (backend -> the route its application now has) serves
    that route, at most `timeout`: until then it answers 404 to what HAProxy sends it there."""
    deadline = time.monotonic() + timeout
    waiting = _addresses([h for h in held if h.backend in routes])
    while waiting:
        waiting = {h: a for h, a in waiting.items() if not _serves(a, routes[h.backend])}
        if waiting and time.monotonic() > deadline:
            report(f"rollout: {len(waiting)} held replica(s) did not serve their new route within {timeout:g} s; "
                   "releasing them")
            return
        if waiting:
            time.sleep(0.05)


def release(held: list[Held], report: Callable[[str], None], routes: Mapping[str, str] | None = None) -> Keeper | None:
    """The held servers ready again (on whichever HAProxy process now answers the socket), once those of a
    backend in `routes` serve its new route (wait_routed); kept ready on a process that takes over within
    RELEASED_KEEP_S (the Keeper doing so, which ends by itself)."""
    keeper = getattr(held, "keeper", None)
    try:
        try:
            if routes:
                wait_routed(held, routes, report)
        finally:
            if keeper is not None:
                keeper.stop()
        applied = _set(held, "ready")
        return Keeper(held, "ready", applied, for_s=RELEASED_KEEP_S) if held else None
    except OSError as exc:
        report(f"rollout: HAProxy's runtime API: {exc}; Serve's fallback proxy keeps serving those routes")
        return None
