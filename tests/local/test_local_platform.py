"""The local platform's provider against a real local Ray, checked over HTTP."""
from __future__ import annotations

import json

import pytest
import requests

from rayserve_pulumi.node_agent import ray_ops
from tests.helpers import post, ray_answers, replica_pids

pytestmark = pytest.mark.ray


def _with_override(props: dict, app: str, deployment: str, **fields) -> dict:
    config = json.loads(props["serve_config_json"])
    target = next(a for a in config["applications"] if a["name"] == app)
    next(d for d in target["deployments"] if d["name"] == deployment).update(fields)
    return {**props, "serve_config_json": json.dumps(config, sort_keys=True)}


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


def test_summarize_translate_wiring_with_stand_in_model(local_serve):
    url = local_serve[1].outs["app_urls"]["summarize_translate"]
    assert post(url, "The cat is small. It sleeps all day long.") == "le chat est petit"


def test_user_config_change_applies_in_place(local_serve):
    provider, result = local_serve
    dash = result.outs["dashboard_url"]
    pids_before = replica_pids(dash, "fruit", "MangoStand")
    news = _with_override(result.outs, "fruit", "MangoStand", user_config={"price": 5})
    diff = provider.diff(result.id, result.outs, news)
    assert diff.changes and not diff.replaces
    updated = provider.update(result.id, result.outs, news).outs
    assert post(updated["app_urls"]["fruit"], ["MANGO", 2]) == 10
    assert replica_pids(dash, "fruit", "MangoStand") == pids_before
    assert updated["config_hash"] != result.outs["config_hash"]
    result.outs.update(updated)


def test_num_replicas_change_scales_deployment(local_serve):
    provider, result = local_serve
    news = _with_override(result.outs, "calc", "Adder", num_replicas=2)
    provider.update(result.id, result.outs, news)
    assert len(replica_pids(result.outs["dashboard_url"], "calc", "Adder")) == 2
    assert post(result.outs["app_urls"]["calc"], ["ADD", 3]) == "6 pizzas please!"
    result.outs.update(news)


def test_delete_shuts_serve_and_ray_down(local_serve):
    provider, result = local_serve
    provider.delete(result.id, result.outs)
    assert not ray_answers(result.outs["dashboard_url"])
    with pytest.raises(requests.ConnectionError):
        requests.post(result.outs["app_urls"]["fruit"], json=["MANGO", 1], timeout=5)
