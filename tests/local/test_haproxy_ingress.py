"""`serve.proxy: haproxy` (Ray Serve's experimental HAProxy ingress) on a real local Ray, and delete
stopping Ray, Serve and HAProxy."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests

from pathlib import Path

from rayserve_pulumi.node_agent import procs
from rayserve_pulumi.config import LocalSettings, ServeSettings
from rayserve_pulumi.local import LocalServeProvider, provider_inputs
from rayserve_pulumi.local.lifecycle import LocalServe, head_pid_file, ray_temp_dir
from rayserve_pulumi.config import build_serve_config
from tests.helpers import free_local_ports, free_port, post, ray_answers

pytestmark = pytest.mark.ray


def _haproxy_in(sid: int) -> list[list[str]]:
    """The command lines of the HAProxy processes among the head's session (an assertion about our processes,
    not a selector)."""
    return [argv for argv in procs.commands(sid).values() if any("haproxy" in arg for arg in argv)]


def _config_file(props: dict) -> Path:
    """The config file Ray rendered for the HAProxy of the head started with `props`."""
    argv = next(a for a in _haproxy_in(procs.read(head_pid_file(props))["sid"]) if "-f" in a)
    return Path(argv[argv.index("-f") + 1])


def test_haproxy_ingress_serves_beside_another_stack_and_is_stopped_with_ray(tmp_path):
    """Two local heads with HAProxy at once (each with its own HAProxy stats and metrics ports, which Ray binds on
    every interface: with Ray's fixed defaults the second HAProxy could not start), the second serving its app at
    `/` (HAProxy routes by path prefix: `/` takes every path), then one deleted alone."""
    env = ServeSettings(proxy="haproxy").runtime_env()
    provider, heads, settings = LocalServeProvider(), [], {}
    for name in ("one", "two"):
        config = build_serve_config(ServeSettings(applications=["calc"], http_port=free_port()))
        if name == "two":
            config["applications"][0]["route_prefix"] = "/"
        settings[name] = LocalSettings(**free_local_ports(), num_cpus=2)
        heads.append(provider_inputs(settings[name], config, str(tmp_path / name), env))
    try:
        one, two = (provider.create(props) for props in heads)
        sid = procs.read(head_pid_file(heads[0]))["sid"]
        assert _haproxy_in(sid), "HAProxy ingress not running in the head's session"
        for props, name in zip(heads, ("one", "two")):
            config_file = _config_file(props)
            assert config_file.is_relative_to(ray_temp_dir(props)), config_file  # not the machine's /tmp/haproxy-serve
            config = config_file.read_text()
            assert "nbthread 1\n" in config, config  # local.haproxy_threads' default, not Ray's 4
            port = settings[name].fallback_proxy_port  # each HAProxy falls back to its own stack's proxy
            assert re.search(rf"server \S+ [\d.]+:{port} check backup\n", config), config
        assert urlsplit(two.outs["app_urls"]["calc"]).path == "/"
        for result in (one, two):
            assert post(result.outs["app_urls"]["calc"], ["MUL", 3]) == "15 pizzas please!"
        with pytest.raises(requests.HTTPError, match="404"):  # `/` is the second stack's only: the first has none
            post(one.outs["app_urls"]["calc"].rsplit("/", 1)[0] + "/", ["MUL", 3])
        temp_dirs = [Path(ray_temp_dir(props)) for props in heads]
        assert all((d / "session_latest").exists() for d in temp_dirs), temp_dirs
        provider.delete(one.id, one.outs)
        assert procs.members(sid) == []  # Ray, Serve and HAProxy: the whole session, and only it
        assert not temp_dirs[0].exists() and temp_dirs[1].exists()  # the deleted head's own temp dir, only it
        assert not head_pid_file(heads[0]).exists()
        assert not ray_answers(one.outs["dashboard_url"])  # delete stopped Ray, and Serve with it
        with pytest.raises(requests.ConnectionError):
            requests.post(one.outs["app_urls"]["calc"], json=["MUL", 1], timeout=5)
        assert post(two.outs["app_urls"]["calc"], ["MUL", 2]) == "10 pizzas please!"  # the other stack: untouched
    finally:
        for props in heads:  # what destroy does: stop by the PID file, remove the head's temp dir
            LocalServe().delete(props)
