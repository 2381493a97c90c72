"""Shared test helpers: free ports, HTTP calls, and reading Serve replica state."""
from __future__ import annotations

import socket

import requests

from components import ray_ops


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body, timeout: float = 30):
    resp = requests.post(url, json=body, timeout=timeout)
    resp.raise_for_status()
    return resp.json()


def replica_pids(dashboard_url: str, app: str, deployment: str) -> list[int]:
    """PIDs of a deployment's RUNNING replicas, from the Serve REST API."""
    dep = ray_ops.status(dashboard_url)["applications"][app]["deployments"][deployment]
    return sorted(r["pid"] for r in dep["replicas"] if r["state"] == "RUNNING")


def ray_answers(dashboard_url: str) -> bool:
    try:
        ray_ops.wait_dashboard(dashboard_url, timeout=1)
        return True
    except TimeoutError:
        return False
