"""EC2 user data for Ray VMs: unpack the node agent and run `python3 -m rayserve_pulumi.node_agent`.

The archive holds the standard-library-only part of the package (the node agent and the constants it
shares), built byte-for-byte reproducibly, so user data only changes when the image, the agent's
code or the node's arguments change (the Serve config is not in it: it lives in SSM and is applied
in place by the sync timer).
"""
from __future__ import annotations

import base64
import gzip
import io
import shlex
import tarfile
from pathlib import Path

import rayserve_pulumi

PACKAGE_ROOT = Path(rayserve_pulumi.__file__).resolve().parent
AGENT_FILES = ("__init__.py", "constants.py", "node_agent/__init__.py", "node_agent/__main__.py",
               "node_agent/bootstrap.py", "node_agent/ray_ops.py")
AGENT_MODULE = "rayserve_pulumi.node_agent"
INSTALL_DIR = "/opt/rayserve"
EC2_USER_DATA_LIMIT = 16384


def agent_archive() -> str:
    """base64 of a reproducible .tar.gz holding rayserve_pulumi/{__init__,constants}.py and node_agent/."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in AGENT_FILES:
            data = (PACKAGE_ROOT / name).read_bytes()
            info = tarfile.TarInfo(f"rayserve_pulumi/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(gzip.compress(raw.getvalue(), mtime=0)).decode()


def render(command: str, args: list[str]) -> str:
    """A cloud-init shell script running the node agent's `command` with `args`."""
    invocation = " ".join(shlex.quote(a) for a in ["python3", "-m", AGENT_MODULE, command, *args])
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"mkdir -p {INSTALL_DIR}",
        f"echo '{agent_archive()}' | base64 -d | tar -xz -C {INSTALL_DIR}",
        "systemctl enable --now docker",
        f"cd {INSTALL_DIR}",
        invocation,
        "",
    ])
    if len(script.encode()) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(script.encode())} bytes; EC2 allows {EC2_USER_DATA_LIMIT}")
    return script
