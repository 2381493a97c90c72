"""A Prometheus configuration for a Ray cluster. Standard library only (the VM node agent writes it).

Ray's head keeps `prom_metrics_service_discovery.json` in its temp dir up to date with the metrics
endpoint of every node (and of the dashboard, and of the autoscaler where one runs: not on `local`), so
one `file_sd_configs` entry scrapes every node, including workers that join later.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Optional

__all__ = ["SD_FILE", "RAY_TEMP_DIR", "RAY_SD_FILE", "RULES_FILE", "CONFIG_FILE", "JOB", "ray_temp_dir",
           "remove_ray_temp_dir", "sd_file",
           "config", "write", "start"]

SD_FILE = "prom_metrics_service_discovery.json"
RAY_TEMP_DIR = "/tmp/ray"  # Ray's default temp dir, where the head writes SD_FILE
RAY_SD_FILE = f"{RAY_TEMP_DIR}/{SD_FILE}"


def ray_temp_dir(owner: str) -> str:
    """Ray's temp dir for one head among several on a machine (`owner`: where that head's state lives). Ray's
    default is one per machine, and the service-discovery file there is the last head's: two heads'
    Prometheus would scrape one cluster. Short, as Ray's Unix sockets live beneath it (107 bytes at most)."""
    return f"{RAY_TEMP_DIR}-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"


def remove_ray_temp_dir(temp_dir: str) -> None:
    """Remove a head's own temp dir (a `ray_temp_dir`: sessions, logs, spilled objects) once that head has
    stopped: ups and deletes of a stack otherwise leave its sessions piling up in /tmp. Refuses any other path,
    Ray's shared default included."""
    if not re.fullmatch(re.escape(RAY_TEMP_DIR) + r"-[0-9a-f]{12}", temp_dir):
        raise ValueError(f"not a head's own Ray temp dir: {temp_dir!r}")
    shutil.rmtree(temp_dir, ignore_errors=True)


def sd_file(temp_dir: str) -> str:
    """Where the head started with `temp_dir` keeps its service-discovery file up to date."""
    return f"{temp_dir}/{SD_FILE}"
RULES_FILE = "rayserve-alerts.json"
CONFIG_FILE = "prometheus.yml"
JOB = "ray"


def config(sd_file: str, rules_file: str, scrape_interval_s: int) -> dict:
    """prometheus.yml as a dict (JSON is YAML, so `json.dumps` of it is a valid config file)."""
    return {
        "global": {"scrape_interval": f"{scrape_interval_s}s", "evaluation_interval": f"{scrape_interval_s}s"},
        "rule_files": [rules_file],
        "scrape_configs": [{"job_name": JOB, "file_sd_configs": [{"files": [sd_file], "refresh_interval": "5s"}]}],
    }


def write(folder, sd_file: str, scrape_interval_s: int, seen_as: Optional[str] = None) -> str:
    """Write prometheus.yml and the alert rules into `folder`; return the config's path. `seen_as` is where
    Prometheus sees `folder` (a container's mount point), if not there."""
    from rayserve_pulumi.observability.rules import rule_groups

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RULES_FILE).write_text(json.dumps(rule_groups(scrape_interval_s), indent=1))
    path = folder / CONFIG_FILE
    path.write_text(json.dumps(config(sd_file, f"{seen_as or folder}/{RULES_FILE}", scrape_interval_s), indent=1))
    return str(path)


def start(folder, host: str, port: int, scrape_interval_s: int, pid_file: Path, ray_sd_file: str) -> str:
    """Write the configuration into `folder` and start the `prometheus` on PATH (Debian's) listening on
    host:port, scraping what `ray_sd_file` lists, in a session of its own recorded in `pid_file`; return its
    URL at once (not yet ready)."""
    import shutil

    from rayserve_pulumi.node_agent import procs

    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("rayserve:metrics.enabled needs Prometheus on PATH (scripts/setup.sh installs Debian's)")
    folder = Path(folder)
    config_file = write(folder, ray_sd_file, scrape_interval_s)
    procs.spawn([binary, f"--config.file={config_file}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address={host}:{port}"], pid_file, log_file=folder / "prometheus.log", wait=False)
    return f"http://{host}:{port}"
