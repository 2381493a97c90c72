"""The real-Ray phase hands its units of work to two pytest-xdist workers costliest first, by
tests/ray_durations.json (tests/conftest.py): the file must name units that exist, and the collection must
follow it."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import RAY_DURATIONS, ray_scope
from tests.helpers import ROOT


def test_every_unit_the_durations_name_exists():
    stale = [scope for scope in json.loads(RAY_DURATIONS.read_text()) if not (ROOT / scope).exists()]
    assert not stale, f"{RAY_DURATIONS.name} names units that no longer exist: {stale}; refresh it with " \
                      "--store-ray-durations"


def test_the_real_ray_units_are_collected_costliest_first():
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "-m", "ray and not timed"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    scopes = []
    for line in out.splitlines():
        if "::" in line and ray_scope(line) not in scopes:
            scopes.append(ray_scope(line))
    durations = json.loads(RAY_DURATIONS.read_text())
    assert len(scopes) > 5, out
    missing = [s for s in scopes if s not in durations]
    assert not missing, f"real-Ray units with no figure in {RAY_DURATIONS.name}: {missing}"
    costs = [durations[s] for s in scopes]
    assert costs == sorted(costs, reverse=True), list(zip(scopes, costs))
