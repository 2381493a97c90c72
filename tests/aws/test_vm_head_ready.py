"""The checks `up` waits on for a new VM head (its SSM documents' scripts), run for real with bash. Readiness: a
stand-in `cloud-init` (the one thing of the instance it calls besides curl) and a stand-in Serve on 127.0.0.1. In
service behind the balancer, before the old head goes: a stand-in `aws` answering the target's health states."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Optional

import pytest

from rayserve_pulumi.aws.vm.cluster import head_in_service_document, head_ready_document
from tests.helpers import free_port, stand_in_commands, stand_in_http


def _run(tmp_path: Path, script: str, stubs: dict[str, str]) -> subprocess.CompletedProcess:
    """`script` run with bash, the commands named in `stubs` replaced by those scripts (first on PATH)."""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": stand_in_commands(tmp_path / "bin", stubs)})


def _check(tmp_path: Path, cloud_init_status: int, serve_port: int) -> subprocess.CompletedProcess:
    """The document's script, with `cloud-init status --wait` ending in `cloud_init_status`."""
    [step] = json.loads(head_ready_document(serve_port, 60))["mainSteps"]
    return _run(tmp_path, "\n".join(step["inputs"]["runCommand"]), {
        "cloud-init": f'#!/bin/sh\n[ "$1 $2" = "status --wait" ] || exit 99\nexit {cloud_init_status}\n'})


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


REAL_PARAMETERS = {"Region": "us-west-2", "InstanceId": "i-0123456789abcdef0", "Port": "8000",
                   "TargetGroupArn": "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/"
                                     "rayserve-vm-serve-1a2b3c4/73e2d6bc24d8a067"}


def _in_service(tmp_path: Path, states: list[str], timeout_s: int) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The in-service document's script as SSM runs it: each parameter checked against its allowedPattern, then
    substituted; a stand-in `aws` answering `states` one call after the other (the last one from then on) and a
    `sleep` that returns at once."""
    doc = json.loads(head_in_service_document(timeout_s))
    assert set(REAL_PARAMETERS) == set(doc["parameters"])
    for key, value in REAL_PARAMETERS.items():
        assert re.fullmatch(doc["parameters"][key]["allowedPattern"], value), key
    [step] = doc["mainSteps"]
    script = "\n".join(step["inputs"]["runCommand"])
    for key, value in REAL_PARAMETERS.items():
        script = script.replace("{{ %s }}" % key, value)
    assert "{{" not in script
    calls, states_file = tmp_path / "calls", tmp_path / "states"
    states_file.write_text("\n".join(states) + "\n")
    result = _run(tmp_path, script, {
        "aws": f'#!/bin/bash\necho "$*" >> {calls}\nn=$(wc -l < {calls})\n'
               f'sed -n "${{n}}p" {states_file} | grep . || tail -n 1 {states_file}\n',
        "sleep": "#!/bin/sh\nexit 0\n"})
    return result, calls.read_text().splitlines()


def test_the_in_service_check_waits_until_the_balancer_reports_the_head_healthy(tmp_path):
    result, calls = _in_service(tmp_path, ["initial\tElb.RegistrationInProgress", "initial\tElb.InitialHealthChecking",
                                           "healthy\tNone"], 60)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 3
    assert calls[0].split() == [
        "elbv2", "describe-target-health", "--region", "us-west-2", "--target-group-arn",
        REAL_PARAMETERS["TargetGroupArn"], "--targets", "Id=i-0123456789abcdef0,Port=8000", "--query",
        "TargetHealthDescriptions[0].TargetHealth.[State,Reason]", "--output", "text"]


def test_the_in_service_check_fails_at_its_deadline_naming_the_last_state(tmp_path):
    result, calls = _in_service(tmp_path, ["unhealthy\tTarget.FailedHealthChecks"], 1)
    assert result.returncode == 1 and len(calls) >= 1
    assert "did not put the new Ray head in service within 1 s: unhealthy\tTarget.FailedHealthChecks" in result.stderr


@pytest.mark.parametrize("key, value", [("InstanceId", "i-0123; reboot"), ("Region", "us-west-2'"),
                                        ("TargetGroupArn", "arn:aws:s3:::bucket"), ("Port", "80 && true")])
def test_the_in_service_parameters_admit_only_aws_shapes(key: str, value: str):
    pattern = json.loads(head_in_service_document(60))["parameters"][key]["allowedPattern"]
    assert re.fullmatch(pattern, REAL_PARAMETERS[key])
    assert not re.fullmatch(pattern, value)
