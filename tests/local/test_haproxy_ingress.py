"""`serve.proxy: haproxy` (Ray Serve's experimental HAProxy ingress) on a real local Ray, and delete
stopping Ray, Serve and HAProxy."""
from __future__ import annotations

import pytest
import requests

from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.config import build_serve_config
from tests.helpers import free_port, post, ray_answers

pytestmark = pytest.mark.ray


def test_haproxy_ingress_serves_and_is_stopped_with_ray():
    settings = LocalSettings(gcs_port=free_port(), dashboard_port=free_port(), num_cpus=4)
    config = build_serve_config(ServeSettings(applications=["calc"], http_port=free_port()))
    provider = LocalServeProvider()
    try:
        result = provider.create(provider_inputs(settings, config, proxy="haproxy"))
        assert ray_ops.serve_haproxy_pids(), "HAProxy ingress not running"
        assert post(result.outs["app_urls"]["calc"], ["MUL", 3]) == "15 pizzas please!"
        provider.delete(result.id, result.outs)
        assert ray_ops.serve_haproxy_pids() == []
        assert not ray_answers(result.outs["dashboard_url"])  # delete stopped Ray, and Serve with it
        with pytest.raises(requests.ConnectionError):
            requests.post(result.outs["app_urls"]["calc"], json=["MUL", 1], timeout=5)
    finally:
        ray_ops.stop()
