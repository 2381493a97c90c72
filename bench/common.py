"""Helpers shared by the benchmarks and the tests (neither is installed)."""
from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from rayserve_pulumi.config import LocalSettings
from rayserve_pulumi.config.checks import ray_port_ranges

# Where the ports given to tests and benches come from: below the kernel's ephemeral range (every port-0 bind
# and outgoing connection of Ray's processes takes one from there, so a port found free there can be taken
# before the head binds it: a HAProxy that then cannot bind fails a deploy) and outside the ranges Ray binds
# from (worker ports; direct-ingress replica ports).
PORTS = range(20000, 30000)
_given: set[int] = set()  # never the same port twice in one process


def _ephemeral() -> range:
    try:
        low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux' default


def _share() -> tuple[int, int]:
    """(this process's slot, how many slots): test processes run side by side (scripts/test.sh's two streams,
    RAYSERVE_TEST_SHARE=slot/slots, each maybe split further by pytest-xdist) each take every n-th port, so
    two of them never pick the same free port before either binds it."""
    try:
        slot, slots = (int(x) for x in os.environ.get("RAYSERVE_TEST_SHARE", "0/1").split("/"))
    except ValueError:
        raise ValueError(f"RAYSERVE_TEST_SHARE={os.environ['RAYSERVE_TEST_SHARE']!r}: slot/slots, e.g. 0/2") from None
    if not (slots >= 1 and 0 <= slot < slots):
        raise ValueError(f"RAYSERVE_TEST_SHARE={os.environ['RAYSERVE_TEST_SHARE']!r}: needs 0 <= slot < slots")
    try:
        worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
        workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    except (KeyError, ValueError):
        return slot, slots
    return slot + slots * worker, slots * workers  # within the stream's own share


@lru_cache(maxsize=None)
def _usable() -> tuple[int, ...]:
    """PORTS outside the kernel's ephemeral range and Ray's ranges, this process's share of them (worked
    out once per process)."""
    taken = [_ephemeral(), *ray_port_ranges().values()]
    slot, slots = _share()
    return tuple(p for p in PORTS if p % slots == slot and not any(p in r for r in taken))


def free_port() -> int:
    """A TCP port nothing listens on (on any interface: HAProxy binds `*`), outside the ranges the kernel and
    Ray hand out, and not given before by this process."""
    candidates = [p for p in _usable() if p not in _given]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def free_local_ports() -> dict[str, int]:
    """Free ports for every listener of a local head (LocalSettings' port keys): a head started by a test
    or a bench never meets the one your stack runs."""
    return {key: free_port() for key in LocalSettings.PORT_KEYS}


def spread(values: list[float]) -> str:
    """A figure over several runs as the benchmarks print it: 'median (min-max)'."""
    return f"{statistics.median(values):g} ({min(values):g}-{max(values):g})"


@contextmanager
def own_ray_tmpdir() -> Iterator[dict[str, str]]:
    """The environment for a baseline Ray started with Ray's defaults (`ray start`, `serve run`): `RAY_TMPDIR`, the
    one default it changes, a short temporary folder removed afterwards, so the baseline leaves no session in Ray's
    shared /tmp/ray (start the process inside the `with` and stop it before it ends)."""
    folder = tempfile.mkdtemp(prefix="rsp-bench-")  # short: Ray's socket paths lie beneath it
    try:
        yield {"RAY_TMPDIR": folder}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
