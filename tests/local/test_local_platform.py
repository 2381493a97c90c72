"""The local platform's provider against a real local Ray, checked over HTTP."""
from __future__ import annotations

import pytest
import requests

from rayserve_pulumi.node_agent import ray_ops
from tests.conftest import with_override
from tests.helpers import post, replica_pids

pytestmark = pytest.mark.ray


def test_outputs_name_every_app_with_its_route(local_serve):
    _, result = local_serve
    urls = result.outs["app_urls"]
    assert set(urls) == {"fruit", "calc", "summarize_translate"}
    assert urls["fruit"].endswith("/fruit") and urls["calc"].endswith("/calc")
    assert set(ray_ops.status(result.outs["dashboard_url"])["applications"]) == set(urls)


def test_dashboard_requires_the_ray_auth_token(local_serve):
    anonymous = requests.get(local_serve[1].outs["dashboard_url"] + "/api/serve/applications/", timeout=10)
    assert anonymous.status_code == 401


def test_fruit_and_calc_answer_over_http(local_serve):
    urls = local_serve[1].outs["app_urls"]
    assert post(urls["fruit"], ["MANGO", 2]) == 6
    assert post(urls["fruit"], ["PEAR", 1]) == 4
    assert post(urls["calc"], ["MUL", 3]) == "15 pizzas please!"
    assert post(urls["calc"], ["ADD", 3]) == "6 pizzas please!"


def test_user_config_change_applies_in_place(local_serve):
    provider, result = local_serve
    dash = result.outs["dashboard_url"]
    pids_before = replica_pids(dash, "fruit", "MangoStand")
    news = with_override(result.outs, "fruit", "MangoStand", user_config={"price": 5})
    diff = provider.diff(result.id, result.outs, news)
    assert diff.changes and not diff.replaces
    updated = provider.update(result.id, result.outs, news).outs
    try:
        assert post(updated["app_urls"]["fruit"], ["MANGO", 2]) == 10
        assert replica_pids(dash, "fruit", "MangoStand") == pids_before
        assert updated["config_hash"] != result.outs["config_hash"]
    finally:
        provider.update(result.id, updated, result.outs)  # the session's cluster goes back to the quick start


def test_num_replicas_change_scales_deployment(local_serve):
    provider, result = local_serve
    news = with_override(result.outs, "calc", "Adder", num_replicas=2)
    provider.update(result.id, result.outs, news)
    try:
        assert len(replica_pids(result.outs["dashboard_url"], "calc", "Adder")) == 2
        assert post(result.outs["app_urls"]["calc"], ["ADD", 3]) == "6 pizzas please!"
    finally:
        provider.update(result.id, news, result.outs)
