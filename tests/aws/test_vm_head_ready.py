"""The check `up` waits on for a new VM head (its SSM document's script), run for real with bash: a stand-in
`cloud-init` (the one thing of the instance it calls besides curl) and a stand-in Serve on 127.0.0.1."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from rayserve_pulumi.aws.vm.cluster import head_ready_document
from tests.helpers import free_port, stand_in_http


def _check(tmp_path: Path, cloud_init_status: int, serve_port: int) -> subprocess.CompletedProcess:
    """The document's script, with `cloud-init status --wait` ending in `cloud_init_status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "cloud-init"
    stub.write_text(f'#!/bin/sh\n[ "$1 $2" = "status --wait" ] || exit 99\nexit {cloud_init_status}\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    [step] = json.loads(head_ready_document(serve_port, 60))["mainSteps"]
    return subprocess.run(["bash", "-c", "\n".join(step["inputs"]["runCommand"])], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=30)


@pytest.mark.parametrize("cloud_init_status, healthz, ready", [
    (0, 200, True),
    (2, 200, True),    # done, with warnings only (cloud-init 23.4 and later)
    (1, 200, False),   # the node agent's `head` failed: a deploy refused, an application never RUNNING
    (0, 503, False),   # Serve does not answer healthy
    (0, None, False),  # nothing listens on Serve's port
])
def test_the_head_ready_check_passes_only_for_a_head_whose_agent_succeeded_and_whose_serve_answers(
        tmp_path, cloud_init_status: int, healthz: Optional[int], ready: bool):
    if healthz is None:
        result = _check(tmp_path, cloud_init_status, free_port())
    else:
        with stand_in_http("127.0.0.1", free_port(), lambda method, path: (
                healthz if path == "/-/healthz" else 404, b"success")) as url:
            result = _check(tmp_path, cloud_init_status, int(url.rsplit(":", 1)[1]))
    assert (result.returncode == 0) is ready, result.stderr
    if not ready:
        assert result.returncode == 1
        assert f"the new Ray head did not come up (cloud-init status {cloud_init_status})" in result.stderr
