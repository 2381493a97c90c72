"""Helpers shared by the benchmarks and the tests (neither is installed)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOCAL_PORT_KEYS = ("gcs_port", "dashboard_port", "haproxy_stats_port", "haproxy_metrics_port")


def free_local_ports() -> dict[str, int]:
    """Free ports for every listener of a local head (LocalSettings' port keys): a head started by a test
    or a bench never meets the one your stack runs."""
    return {key: free_port() for key in LOCAL_PORT_KEYS}
