"""Each head keeps its own Ray temp dir: Ray's default, /tmp/ray, is one per machine, and the
service-discovery file Ray keeps there is the last head's, so two stacks' Prometheus would both scrape it."""
from __future__ import annotations

from pathlib import Path

import pytest

from rayserve_pulumi.config import LocalSettings, MetricsSettings, ServeSettings, build_serve_config
from rayserve_pulumi.local import head, lifecycle, provider_inputs
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.observability import prometheus
from tests.helpers import free_local_ports, free_port


def _props(run_dir) -> dict:
    config = build_serve_config(ServeSettings(applications=["fruit"], http_port=free_port()))
    return provider_inputs(LocalSettings(**free_local_ports()), config, str(run_dir),
                           metrics=MetricsSettings(enabled=True, prometheus_port=free_port()))


def test_two_stacks_heads_get_temp_dirs_of_their_own_short_enough_for_rays_sockets(tmp_path):
    one, two = lifecycle.ray_temp_dir(_props(tmp_path / "a")), lifecycle.ray_temp_dir(_props(tmp_path / "b"))
    assert one != two and prometheus.RAY_TEMP_DIR not in (one, two)
    assert lifecycle.ray_temp_dir(_props(tmp_path / "a")) == one  # the same stack: the same dir, run after run
    # Ray's longest socket path beneath it stays under the 107 bytes a Unix socket path may hold
    assert len(f"{one}/session_2026-12-03_06-20-50_123456_4194304/sockets/plasma_store") < 107


def test_the_head_and_its_prometheus_are_given_the_same_dir(tmp_path, monkeypatch):
    props = _props(tmp_path / "run")
    spawned, started = {}, {}
    monkeypatch.setattr(head, "spawn", lambda pid_file, **opts: spawned.update(opts))
    monkeypatch.setattr(prometheus, "start", lambda *args: started.update(sd=args[-1]))
    lifecycle.spawn_head(props, {})
    lifecycle.start_prometheus(props)
    assert started["sd"] == prometheus.sd_file(spawned["temp_dir"]) == f"{lifecycle.ray_temp_dir(props)}/" \
        "prom_metrics_service_discovery.json"


def test_rays_own_cli_is_given_it_too():
    args = ray_ops.head_args(temp_dir="/tmp/ray-0123456789ab")
    assert "--temp-dir=/tmp/ray-0123456789ab" in args
    assert not [a for a in ray_ops.head_args() if a.startswith("--temp-dir")]  # a VM's container keeps /tmp/ray
    assert "temp_dir" in head.OPTIONS


def test_the_dashboards_metrics_port_is_the_stacks_and_rays_default_adds_nothing(tmp_path):
    from rayserve_pulumi.constants import DASHBOARD_METRICS_PORT

    moved = _props(tmp_path / "a")  # free ports: another than Ray's
    assert moved["ray_env"]["DASHBOARD_METRIC_PORT"] != str(DASHBOARD_METRICS_PORT)
    config = build_serve_config(ServeSettings(applications=["fruit"], http_port=free_port()))
    kept = provider_inputs(LocalSettings(), config, str(tmp_path / "b"))
    assert "DASHBOARD_METRIC_PORT" not in kept["ray_env"]  # a stack on Ray's defaults keeps its inputs


def test_only_a_heads_own_temp_dir_can_be_removed(tmp_path):
    own = lifecycle.ray_temp_dir(_props(tmp_path / "run"))
    (Path(own) / "session_x" / "logs").mkdir(parents=True)
    prometheus.remove_ray_temp_dir(own)
    assert not Path(own).exists()
    prometheus.remove_ray_temp_dir(own)  # already gone: nothing to do
    for other in (prometheus.RAY_TEMP_DIR, str(tmp_path), f"{own}/..", f"{own}x", "/tmp/ray-0123456789AB"):
        with pytest.raises(ValueError, match="not a head's own Ray temp dir"):
            prometheus.remove_ray_temp_dir(other)
    assert tmp_path.exists()


def test_serves_haproxy_files_live_in_the_heads_temp_dir_within_haproxys_socket_limit(tmp_path):
    props = _props(tmp_path / "run")
    own = lifecycle.ray_temp_dir(props)
    files = {k: v for k, v in props["ray_env"].items() if k.startswith("RAY_SERVE_HAPROXY_") and "/" in v}
    assert files == lifecycle.haproxy_files_env(own) and len(files) == 5
    assert all(v.startswith(f"{own}/") for v in files.values()), files
    node_id = "0" * 56  # Ray puts each node's files in a folder named by its ID beneath the given paths
    for key in ("RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"):
        folder, name = files[key].rsplit("/", 1)
        assert len(f"{folder}/{node_id}/{name}") <= 97, key  # HAProxy refuses a longer log socket path
