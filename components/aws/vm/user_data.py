"""EC2 user data for Ray VMs: unpack the node agent and run `python3 -m rayserve_pulumi.node_agent`.

The archive holds the standard-library-only part of the package (the node agent and the constants it
shares), built byte-for-byte reproducibly, so user data only changes when the image, the agent's
code or the node's arguments change (the Serve config is not in it: it lives in SSM and is applied
in place by the sync timer). EC2 caps user data at 16 KiB, so the modules travel without docstrings
and comments (an `ast` round trip: the same code), with only the constants they import, the archive is
bzip2'd (about 8 % smaller than gzip; the node's python3 unpacks it, since the bzip2 program may be missing)
and the script itself is gzipped (`encode`), which cloud-init undoes.
"""
from __future__ import annotations

import ast
import base64
import bz2
import functools
import gzip
import io
import shlex
import tarfile
import threading
from pathlib import Path

import rayserve_pulumi
from rayserve_pulumi.pysource import parse

__all__ = [
    "PACKAGE_ROOT", "AGENT_FILES", "AGENT_MODULE", "INSTALL_DIR", "EC2_USER_DATA_LIMIT", "without_docstrings",
    "SHARED_CONSTANTS", "imported_from", "only",
    "agent_archive", "unpack_command", "render", "encode", "decode",
]

PACKAGE_ROOT = Path(rayserve_pulumi.__file__).resolve().parent
AGENT_FILES = ("__init__.py", "constants.py", "node_agent/__init__.py", "node_agent/__main__.py",
               "node_agent/bootstrap.py", "node_agent/procs.py", "node_agent/ray_ops.py",
               "observability/__init__.py", "observability/prometheus.py", "observability/rules.py")
AGENT_MODULE = "rayserve_pulumi.node_agent"
INSTALL_DIR = "/opt/rayserve"
EC2_USER_DATA_LIMIT = 16384


def without_docstrings(source: str) -> str:
    """The module's code with docstrings and comments dropped (what runs is unchanged)."""
    tree = parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


SHARED_CONSTANTS = "constants.py"  # shipped with only the names the agent's modules import from it


def imported_from(module: str, sources: list[str]) -> set[str]:
    """The names `sources` import with `from <module> import ...`."""
    return {alias.name for source in sources for node in ast.walk(parse(source))
            if isinstance(node, ast.ImportFrom) and node.module == module for alias in node.names}


def only(source: str, names: set[str]) -> str:
    """The module's top-level assignments that define `names` or what those read (its imports kept, its
    `__all__` dropped), so the constants the agent needs travel without the rest of the package's."""
    tree = parse(source)
    defines = {id(node): {t.id for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                          for t in ast.walk(target) if isinstance(t, ast.Name)}
               for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))}
    wanted, kept = set(names), set()
    while True:
        more = [node for node in tree.body if id(node) in defines and id(node) not in kept
                and defines[id(node)] & wanted and "__all__" not in defines[id(node)]]
        if not more:
            break
        for node in more:
            kept.add(id(node))
            wanted |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    missing = set(names) - {name for node in tree.body if id(node) in kept for name in defines[id(node)]}
    if missing:
        raise ValueError(f"the agent imports {sorted(missing)}, which the module does not define")
    tree.body = [node for node in tree.body if id(node) in kept or isinstance(node, (ast.Import, ast.ImportFrom))]
    return ast.unparse(tree) + "\n"


_ARCHIVE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def agent_archive() -> str:
    """base64 of a reproducible .tar.bz2 holding rayserve_pulumi/{__init__,constants}.py and node_agent/.
    Built once per process, under a lock: Pulumi runs the head's and the workers' user data in threads of
    its own, and CPython 3.11's `ast` parser is not safe to run in two threads at once ("AST constructor
    recursion depth mismatch")."""
    with _ARCHIVE_LOCK:
        return _archive()


def _archive() -> str:
    sources = {name: (PACKAGE_ROOT / name).read_text() for name in AGENT_FILES}
    shared = imported_from(f"rayserve_pulumi.{SHARED_CONSTANTS[:-3]}", list(sources.values()))
    sources[SHARED_CONSTANTS] = only(sources[SHARED_CONSTANTS], shared)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in AGENT_FILES:
            data = without_docstrings(sources[name]).encode()
            info = tarfile.TarInfo(f"rayserve_pulumi/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(bz2.compress(raw.getvalue(), 9)).decode()


def unpack_command(folder: str) -> str:
    """The shell line that unpacks the agent archive into `folder`."""
    unpack = "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|bz2').extractall(sys.argv[1])"
    return f"echo '{agent_archive()}' | base64 -d | python3 -c {shlex.quote(unpack)} {shlex.quote(folder)}"


def render(command: str, args: list[str]) -> str:
    """A cloud-init shell script running the node agent's `command` with `args`."""
    invocation = " ".join(shlex.quote(a) for a in ["python3", "-m", AGENT_MODULE, command, *args])
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"mkdir -p {INSTALL_DIR}",
        unpack_command(INSTALL_DIR),
        "systemctl enable --now docker",
        f"cd {INSTALL_DIR}",
        invocation,
        "",
    ])
    encode(script)  # refuses a script too large for EC2 now, not at deploy time
    return script


def encode(script: str) -> str:
    """base64 of the gzipped script: what EC2 takes (`user_data_base64`, a launch template's `user_data`)."""
    packed = gzip.compress(script.encode(), mtime=0)
    if len(packed) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(packed)} bytes gzipped; EC2 allows {EC2_USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()


def decode(value: str) -> str:
    """The script from what `encode` made (tests, `rayserve render`)."""
    return gzip.decompress(base64.b64decode(value)).decode()
