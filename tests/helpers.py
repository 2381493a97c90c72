"""Shared test helpers: free ports, HTTP calls, and reading Serve replica state."""
from __future__ import annotations

from pathlib import Path

import requests

from bench.common import free_port
from rayserve_pulumi.node_agent import ray_ops

__all__ = ["REPORTS", "RESULTS", "free_port", "post", "ray_answers", "replica_pids"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"  # ignored by git: what test runs measure
REPORTS: dict[str, dict] = {}  # scenario -> figures, printed at the end of the run (conftest)


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
