"""The VM's IMDS block (#24): every container the node agent runs, whatever its user, is refused the
instance metadata service, and the rule comes back on boot before Docker restarts the containers.

Run here: the agent's `block-imds` command against a recording `iptables` on PATH, and `systemd-analyze
verify` on the units. Not run here: the rule in a real kernel (no root, no Docker), and a reboot."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rayserve_pulumi.node_agent import bootstrap as agent
from tests.helpers import stand_in_commands

REPO = Path(__file__).resolve().parents[2]


def _args(tmp_path) -> argparse.Namespace:
    return argparse.Namespace(prometheus_port=9090, grafana_port=3000, state_dir=str(tmp_path))


def test_the_rule_matches_the_containers_slice_not_one_user():
    rule = agent.imds_block_rule()
    assert rule[:3] == ["OUTPUT", "-d", agent.IMDS_ADDRESS] and rule[-2:] == ["-j", "REJECT"]
    assert rule[3:7] == ["-m", "cgroup", "--path", agent.CONTAINER_SLICE]
    assert "--uid-owner" not in rule  # Redis (999), Grafana (472) and root in a container are covered too


def test_every_container_the_agent_starts_runs_in_the_slice(tmp_path):
    folder = tmp_path / "prometheus"
    commands = {
        "ray": agent.docker_ray("ray-head", "img@sha256:" + "a" * 64, ["start", "--head"], "/x.env", "/mnt", None),
        "redis": agent.redis_docker(tmp_path / "redis", tmp_path / "redis.conf"),
        "prometheus": agent.prometheus_docker(_args(tmp_path), folder),
        "grafana": agent.grafana_docker(_args(tmp_path)),
    }
    for name, command in commands.items():
        assert command[:2] == ["docker", "run"], name
        at = command.index("--cgroup-parent")
        assert command[at + 1] == agent.CONTAINER_SLICE, name
    # no other `docker run` is built anywhere in the agent
    source = (REPO / "components" / "node_agent" / "bootstrap.py").read_text()
    assert source.count('"docker", "run"') == 1


def test_block_imds_adds_the_rule_once(tmp_path):
    """`python -m rayserve_pulumi.node_agent block-imds`, as the unit runs it, against an `iptables` that
    records its arguments and says whether the rule is there."""
    log, present = tmp_path / "iptables.log", tmp_path / "present"
    iptables = (f"#!/bin/sh\necho \"$@\" >> {log}\n"
                f"if [ \"$1\" = -C ]; then test -e {present}; exit $?; fi\ntouch {present}\n")
    env = {**os.environ, "PATH": stand_in_commands(tmp_path / "bin", {"iptables": iptables})}
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "rayserve_pulumi.node_agent", "block-imds"], env=env, check=True,
                       capture_output=True, timeout=60)
    rule = " ".join(agent.imds_block_rule())
    assert log.read_text().splitlines() == [f"-C {rule}", f"-I {rule}", f"-C {rule}"]


def test_the_units_add_the_rule_before_docker_and_docker_requires_it(tmp_path):
    units = agent.imds_units("/opt/rayserve")
    service = units[f"{agent.IMDS_UNIT}.service"]
    lines = set(service.splitlines())
    assert {f"Requires={agent.CONTAINER_SLICE}", f"After={agent.CONTAINER_SLICE}", "Before=docker.service",
            "RequiredBy=docker.service", "Type=oneshot", "RemainAfterExit=yes"} <= lines
    assert f"ExecStart=/usr/bin/python3 -m {agent.MODULE} block-imds" in lines
    assert "[Slice]" in units[agent.CONTAINER_SLICE]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax is not verified")
    for name, body in units.items():
        (tmp_path / name).write_text(body.replace("/opt/rayserve", str(tmp_path)))
    proc = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / n) for n in units)],
                          capture_output=True, text=True, timeout=120)
    ours = [line for line in proc.stderr.splitlines() if str(tmp_path) in line]
    assert proc.returncode == 0 and ours == [], proc.stderr[-2000:]
    # the check fails a broken unit
    (tmp_path / "broken.service").write_text(service.replace("Type=oneshot", "Type=oneshot\nBogus=1"))
    broken = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "broken.service")],
                            capture_output=True, text=True, timeout=120)
    assert "Bogus" in broken.stderr
