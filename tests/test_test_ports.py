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


def test_the_two_streams_and_their_xdist_workers_draw_from_disjoint_shares(monkeypatch):
    """scripts/test.sh runs the real-Ray and the mock tests side by side (RAYSERVE_TEST_SHARE 0/2 and 1/2);
    either may be split further by pytest-xdist."""
    shares = []
    for stream in ("0/2", "1/2"):
        for worker in ("gw0", "gw1"):
            monkeypatch.setenv("RAYSERVE_TEST_SHARE", stream)
            monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
            monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
            common._usable.cache_clear()
            shares.append(set(common._usable()))
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    for stream in ("0/2", "1/2"):
        monkeypatch.setenv("RAYSERVE_TEST_SHARE", stream)
        common._usable.cache_clear()
        shares.append(set(common._usable()))
    common._usable.cache_clear()
    assert all(shares)
    assert all(a.isdisjoint(b) for i, a in enumerate(shares[:4]) for b in shares[i + 1:4])
    assert shares[4].isdisjoint(shares[5])
    assert shares[4] >= shares[0] | shares[1] and shares[4].isdisjoint(shares[2] | shares[3])  # workers split a stream
    for bad in ("2/2", "one/two", "0/0"):
        monkeypatch.setenv("RAYSERVE_TEST_SHARE", bad)
        with pytest.raises(ValueError, match="RAYSERVE_TEST_SHARE"):
            common._share()
