"""The no-CLI fallback's state file (local.cli.State): the resource and the validation verdict, the verdict
kept when the resource goes (destroy, a Ray found gone), so the next cold `up` of the same config reuses it."""
from __future__ import annotations

import json

import pytest

from rayserve_pulumi.local.cli import State

VERDICT = {"fingerprint": "f" * 64, "serve_config": {"applications": []}}


def test_the_verdict_outlives_the_resource(tmp_path):
    state = State(tmp_path / "state.json")
    assert state.load() is None and state.verdict() is None
    state.save("local-ray", {"a": 1}, VERDICT)
    assert state.load() == {"id": "local-ray", "outs": {"a": 1}} and state.verdict() == VERDICT
    state.save("local-ray", {"a": 2})  # no new verdict: the recorded one stays
    assert state.verdict() == VERDICT
    state.clear()
    assert state.load() is None and state.verdict() == VERDICT
    assert json.loads((tmp_path / "state.json").read_text()) == {"verdict": VERDICT}


def test_clearing_a_state_without_a_verdict_removes_the_file(tmp_path):
    state = State(tmp_path / "state.json")
    state.save("local-ray", {"a": 1})
    state.clear()
    assert not (tmp_path / "state.json").exists() and state.load() is None


def test_a_cold_up_after_destroy_reuses_the_verdict(tmp_path, monkeypatch):
    """`up`, `destroy`, `up` of the same stack through local.cli (the head's lifecycle stubbed: no Ray here):
    the second `up` creates a head again without the full validation."""
    import yaml

    from rayserve_pulumi.config import verdict
    from rayserve_pulumi.local import cli, lifecycle
    from tests.pulumi_harness import stack_values

    created = []

    class Head:  # LocalServe's operations as local.cli calls them
        def create(self, news):
            created.append(news)
            return lifecycle.Applied("local-ray", {**news, "app_urls": {}, "dashboard_url": "http://x"})

        def delete(self, outs):
            pass

    monkeypatch.setattr(lifecycle, "LocalServe", Head)
    stack_file = tmp_path / "Pulumi.local.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in stack_values("local").items()}}))
    state = State(tmp_path / "state.json")
    cli.up(stack_file, state, tmp_path)
    cli.destroy(state)
    monkeypatch.setattr(verdict, "validate_resolved", lambda *a, **k: pytest.fail("the full validation ran"))
    cli.up(stack_file, state, tmp_path)
    assert len(created) == 2 and created[0] == created[1]
