"""`pulumi.com/waitFor` read the way pulumi-kubernetes reads it (kubectl wait: every entry must hold), against
RayService statuses as KubeRay writes them: a Serve-config-only change that ends DEPLOY_FAILED keeps the
RayService Ready (serve endpoints > 0), so only the per-application entries make `pulumi up` fail on it."""
from __future__ import annotations

import json
import re

import pytest

from rayserve_pulumi.kuberay.rayservice import WAIT_FOR, wait_for

CONFIG = {"applications": [{"name": "fruit"}, {"name": "summarize_translate"}, {"name": "team.app"}]}


def _get(obj, path: str):
    """A kubectl JSONPath of dotted keys and ['quoted'] keys."""
    for key in re.findall(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']+)'\]", path):
        obj = (obj or {}).get(key[0] or key[1]) if isinstance(obj, dict) else None
    return obj


def holds(entry: str, resource: dict) -> bool:
    kind, _, rest = entry.partition("=")
    if kind == "condition":
        name, _, want = rest.partition("=")
        found = [c for c in resource["status"].get("conditions", []) if c["type"] == name]
        return bool(found) and found[0]["status"] == (want or "True")
    match = re.fullmatch(r"\{(.*)\}=(.*)", rest)
    assert kind == "jsonpath" and match, entry
    return _get(resource, match[1]) == match[2]


def status(apps: dict[str, str]) -> dict:
    return {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "UpgradeInProgress", "status": "False"}],
                       "activeServiceStatus": {"applicationStatuses": {a: {"status": s} for a, s in apps.items()}}}}


def test_a_config_only_failure_passed_the_conditions_alone_and_fails_the_wait_now():
    failed = status({"fruit": "RUNNING", "summarize_translate": "DEPLOY_FAILED", "team.app": "RUNNING"})
    assert all(holds(e, failed) for e in WAIT_FOR)  # the old waitFor: `pulumi up` passed a failed config
    assert not all(holds(e, failed) for e in json.loads(wait_for(CONFIG)))


@pytest.mark.parametrize("apps,ok", [
    ({"fruit": "RUNNING", "summarize_translate": "RUNNING", "team.app": "RUNNING"}, True),
    ({"fruit": "RUNNING", "summarize_translate": "RUNNING", "team.app": "DEPLOYING"}, False),
    ({"fruit": "RUNNING", "summarize_translate": "RUNNING"}, False),  # an application not deployed at all
    ({"fruit": "UNHEALTHY", "summarize_translate": "RUNNING", "team.app": "RUNNING"}, False),
])
def test_every_application_must_be_running(apps, ok):
    assert all(holds(e, status(apps)) for e in json.loads(wait_for(CONFIG))) is ok


def test_names_that_are_not_identifiers_use_the_bracket_form():
    entries = json.loads(wait_for(CONFIG))
    assert "jsonpath={.status.activeServiceStatus.applicationStatuses['team.app'].status}=RUNNING" in entries
