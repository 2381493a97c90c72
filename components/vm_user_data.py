"""EC2 user data for Ray VMs: unpack the bootstrap (vm_bootstrap.py + ray_ops.py) and run it.

The archive is built byte-for-byte reproducibly, so user data only changes when the image, the
bootstrap code or the node's arguments change (the Serve config is not in it: it lives in SSM and
is applied in place by the sync timer).
"""
from __future__ import annotations

import base64
import gzip
import io
import shlex
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOTSTRAP_FILES = ("vm_bootstrap.py", "ray_ops.py")
INSTALL_DIR = "/opt/rayserve"
EC2_USER_DATA_LIMIT = 16384


def bootstrap_archive() -> str:
    """base64 of a reproducible .tar.gz holding the bootstrap files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in BOOTSTRAP_FILES:
            data = (HERE / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o755
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(gzip.compress(raw.getvalue(), mtime=0)).decode()


def render(command: str, args: list[str]) -> str:
    """A cloud-init shell script running `vm_bootstrap.py <command> <args>`."""
    invocation = " ".join(shlex.quote(a) for a in ["python3", f"{INSTALL_DIR}/vm_bootstrap.py", command, *args])
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"mkdir -p {INSTALL_DIR}",
        f"echo '{bootstrap_archive()}' | base64 -d | tar -xz -C {INSTALL_DIR}",
        "systemctl enable --now docker",
        invocation,
        "",
    ])
    if len(script.encode()) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(script.encode())} bytes; EC2 allows {EC2_USER_DATA_LIMIT}")
    return script
