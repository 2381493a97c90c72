"""The ports tests and benches give a local head (bench.common.free_port): never one the kernel or Ray hands out
on its own, never one in use, never the same twice. A port Ray's processes take between our pick and HAProxy's
bind fails the deploy (`HAProxy crashed during startup: ... cannot bind socket`)."""
from __future__ import annotations

import socket

import pytest

from bench import common
from rayserve_pulumi.config.checks import ray_port_ranges


def test_ports_are_distinct_and_outside_the_kernels_and_rays_ranges():
    ports = [common.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    taken = [common._ephemeral(), *ray_port_ranges().values()]
    assert not [p for p in ports if any(p in r for r in taken)]
    assert all(p in common.PORTS for p in ports)


def test_a_port_something_listens_on_is_never_given(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setattr(common, "_usable", lambda: (port,))  # the only candidate is the busy port
        with pytest.raises(RuntimeError, match="no free port"):
            common.free_port()


def test_parallel_test_processes_draw_from_disjoint_shares(monkeypatch):
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        common._usable.cache_clear()
        shares.append(set(common._usable()))
    common._usable.cache_clear()
    assert shares[0] and shares[1] and shares[0].isdisjoint(shares[1])
