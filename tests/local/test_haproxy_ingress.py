"""`serve.proxy: haproxy` (Ray Serve's experimental HAProxy ingress) on a real local Ray, and delete
stopping Ray, Serve and HAProxy."""
from __future__ import annotations

import pytest
import requests

from pathlib import Path

from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.local.provider import head_pid_file
from rayserve_pulumi.config import build_serve_config
from tests.helpers import free_port, post, ray_answers

pytestmark = pytest.mark.ray


def _haproxy_in(sid: int) -> list[int]:
    """HAProxy processes among the head's session (an assertion about our processes, not a selector)."""
    return [pid for pid in procs.members(sid) if b"haproxy" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_haproxy_ingress_serves_and_is_stopped_with_ray(tmp_path):
    settings = LocalSettings(gcs_port=free_port(), dashboard_port=free_port(), num_cpus=4)
    config = build_serve_config(ServeSettings(applications=["calc"], http_port=free_port()))
    provider, props = LocalServeProvider(), provider_inputs(settings, config, str(tmp_path),
                                                            ServeSettings(proxy="haproxy").runtime_env())
    try:
        result = provider.create(props)
        sid = procs.read(head_pid_file(props))["sid"]
        assert _haproxy_in(sid), "HAProxy ingress not running in the head's session"
        assert post(result.outs["app_urls"]["calc"], ["MUL", 3]) == "15 pizzas please!"
        provider.delete(result.id, result.outs)
        assert procs.members(sid) == []  # Ray, Serve and HAProxy: the whole session, and only it
        assert not head_pid_file(props).exists()
        assert not ray_answers(result.outs["dashboard_url"])  # delete stopped Ray, and Serve with it
        with pytest.raises(requests.ConnectionError):
            requests.post(result.outs["app_urls"]["calc"], json=["MUL", 1], timeout=5)
    finally:
        ray_ops.stop(head_pid_file(props))
