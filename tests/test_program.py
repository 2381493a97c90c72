"""The stack program: every stack in stacks/ is one registered platform component under Pulumi mocks."""
from __future__ import annotations

import json

import pytest

from rayserve_pulumi.local import lifecycle
from rayserve_pulumi.registry import PLATFORMS, platform_class
from rayserve_pulumi.rollout.gate import SERVE_LATENCY_BUCKETS_ENV
from tests.pulumi_harness import ROOT, all_stacks, render, stack_values, user_data

COMPONENT_PREFIX = "rayserve:"


def test_every_registered_platform_has_a_stack():
    assert {stack_values(s)["platform"] for s in all_stacks()} == set(PLATFORMS)


@pytest.mark.parametrize("stack", all_stacks())
def test_stack_is_one_platform_component_that_owns_everything(rendered, stack):
    r = rendered[stack]
    platform = stack_values(stack)["platform"]
    assert r.outputs["platform"] == platform
    top = [res for res in r.resources if "::pulumi:pulumi:Stack::" in res.parent]
    assert [res.type for res in top] == [platform_class(platform).TYPE]
    assert len(r.resources) > 1
    for res in r.resources:
        if res not in top:
            parent_type = res.parent.split("::")[-2].split("$")[-1]  # urn:pulumi:stack::project::a$b$type::name
            assert parent_type.startswith(COMPONENT_PREFIX), f"{res.type} {res.name} is not parented to a component"
    assert all(t.count(":") == 2 for t in r.types() if t.startswith(COMPONENT_PREFIX))
    if stack != "local":  # local URLs are computed by the provider at `up` time
        apps = stack_values(stack).get("serve", {}).get("applications") or ["fruit", "calc", "summarize_translate"]
        assert sorted(r.outputs["app_urls"]) == sorted(apps)
        fruit = r.outputs["app_urls"]["fruit"]  # Serve's port, or 443 behind TLS
        assert fruit.endswith(":8000/fruit") or (fruit.startswith("https://") and fruit.endswith(".com/fruit"))


def test_local_stack_declares_the_provider_with_validated_config(rendered):
    r = rendered["local"]
    res = r.one("pulumi-python:dynamic:Resource")
    assert res.parent.endswith("rayserve:local:LocalPlatform::rayserve")
    config = json.loads(res.inputs["serve_config_json"])
    assert [a["name"] for a in config["applications"]] == ["fruit", "calc", "summarize_translate"]
    assert res.inputs["dashboard_port"] == 8265 and res.inputs["host"] == "127.0.0.1"
    assert "__provider" in res.inputs  # the serialised LocalServeProvider


@pytest.mark.parametrize("serve,env", [
    # the defaults: HAProxy learns a stopping replica within 2 s here, so it is held 5 s, not Ray's 30
    ({}, {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
          "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5"}),
    ({"proxy": "default", "throughput_optimized": False}, {}),
    # direct ingress under Serve's own proxy: nothing uses the replicas' ports, so a stopping one is held 2 s
    ({"proxy": "default"}, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1",
                            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}),
], ids=["defaults", "serve-defaults", "own-proxy-direct-ingress"])
def test_serves_ingress_and_tuning_reach_every_platform(serve, env):
    env = {**SERVE_LATENCY_BUCKETS_ENV, **env}  # whatever the ingress: the buckets a rollout gate reads p99 from
    values = stack_values("prod")
    values["serve"] = {**values["serve"], **serve}
    pod = render(values, "prod").one("kubernetes:ray.io/v1:RayService").inputs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert {e["name"]: e["value"] for e in pod["containers"][0]["env"] if e["name"].startswith("RAY_SERVE_")} == env
    values = stack_values("vm")
    values["serve"] = {**values["serve"], **serve}
    rendered_vm = render(values, "vm")
    flags = " ".join(f"--serve-env {k}={v}" for k, v in sorted(env.items()))
    for kind in ("head", "worker"):
        script = user_data(rendered_vm, kind)
        assert flags in script and script.count("--serve-env") == len(env)
    values = {**stack_values("local"), "serve": serve}
    haproxy = {"RAY_SERVE_HAPROXY_STATS_PORT": "8404", "RAY_SERVE_HAPROXY_METRICS_PORT": "9101",
               "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": "8500", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": "9500",
               "RAY_SERVE_HAPROXY_NBTHREAD": "1"} if "RAY_SERVE_ENABLE_HA_PROXY" in env else {}
    inputs = render(values, "local").one("pulumi-python:dynamic:Resource").inputs
    if haproxy:  # its files in the head's own Ray temp dir
        haproxy.update(lifecycle.haproxy_files_env(lifecycle.ray_temp_dir(inputs)))
    assert inputs["ray_env"] == {**env, **haproxy, "RAYSERVE_MODELS": str(ROOT / ".models")}


def test_the_node_agent_takes_only_serve_settings_as_environment():
    from rayserve_pulumi.node_agent.ray_ops import serve_env_pair

    assert serve_env_pair("RAY_SERVE_ENABLE_HA_PROXY=1") == ("RAY_SERVE_ENABLE_HA_PROXY", "1")
    buckets = "RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS=1,1.19,600000"  # a list, as ServeSettings.runtime_env has one
    assert serve_env_pair(buckets) == tuple(buckets.split("=", 1))
    for bad in ("LD_PRELOAD=/tmp/x.so", "RAY_SERVE_X", "RAY_SERVE_X=$(id)", "RAY_SERVE_X=1,$(id)", "PATH=/tmp"):
        with pytest.raises(ValueError, match="--serve-env takes RAY_SERVE_"):
            serve_env_pair(bad)


def test_a_config_error_ends_pulumi_up_without_a_traceback():
    import pulumi

    from rayserve_pulumi.program import StackConfigError

    values = {**stack_values("local"), "local": {"num_cpus": True}}
    with pytest.raises(StackConfigError) as info:
        render(values, "local")
    assert isinstance(info.value, pulumi.RunError)  # Pulumi prints a RunError's message, no stack trace
    assert str(info.value) == "rayserve:local.num_cpus: Input should be a valid integer (got True)"


def test_the_running_stacks_config_is_read_through_the_public_api(monkeypatch):
    """What `pulumi up` hands the program: the keys in PULUMI_CONFIG (a misspelt one included, so validation
    refuses it) and values set through the SDK, JSON objects decoded."""
    import json

    import pulumi.runtime

    from rayserve_pulumi.config.sources import raw_stack_values

    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"rayserve:platfrom": "local", "rayserve:name": "from-env",
                                                    "aws:region": "us-west-2"}))
    pulumi.runtime.set_all_config({"rayserve:local": json.dumps({"num_cpus": 2})})
    try:
        values = raw_stack_values()
    finally:
        pulumi.runtime.set_all_config({})
    assert values == {"platfrom": "local", "name": "from-env", "local": {"num_cpus": 2}}


def test_a_validated_serve_config_is_a_type_components_trust(monkeypatch):
    """What validation returns is marked; a component checks a caller's plain dict, not the marked one again."""
    from rayserve_pulumi.aws.vm import cluster
    from rayserve_pulumi.config import ConfigError, ServeSettings, build_serve_config
    from rayserve_pulumi.config.serve import ValidatedServeConfig

    validated = build_serve_config(ServeSettings(applications=["fruit"]))
    assert isinstance(validated, ValidatedServeConfig)
    plain = {**validated, "http_options": {"port": 8265}}  # a caller's own dict, on the dashboard's port
    with pytest.raises(ConfigError, match="8265 collides with the Ray dashboard port"):
        cluster.check_serve_port(plain)
    monkeypatch.setattr(cluster, "serve_port_errors", lambda *a: pytest.fail("checked again"))
    assert cluster.check_serve_port(validated) == 8000
