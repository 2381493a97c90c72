"""The node agent's `--rollout`, without Ray: the value is a JSON object or refused by name, it reaches the
sync timer's unit intact through systemd's quoting, and `roll_out` reads rollout.stepped's exit statuses
(run for real: a config whose code did not change has nothing to step; a dashboard that does not answer
fails the sync with the cause). The real-Ray path is tests/node_agent/test_agent_rollout.py."""
from __future__ import annotations

import argparse
import json
import shlex

import pytest

from rayserve_pulumi.constants import RAY_HAPROXY_SOCKET
from rayserve_pulumi.node_agent import bootstrap
from tests.helpers import free_port

ROLLOUT = json.dumps({"steps": [5, 50, 100], "watch_s": 3, "step_budget_s": 40, "min_requests": 50})
APP = {"name": "echo", "route_prefix": "/echo", "import_path": "v1.echo:app"}


def test_rollout_must_be_a_json_object():
    assert bootstrap.rollout_json(ROLLOUT) == ROLLOUT
    for bad in ("[5, 100]", "steps=5", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--rollout must be a JSON object"):
            bootstrap.rollout_json(bad)
    with pytest.raises(SystemExit):
        bootstrap.parser().parse_args(["sync", "--config-file", "c.json", "--rollout", "nope"])


def test_the_sync_timer_gets_the_rollout_intact_through_systemds_quoting():
    args = bootstrap.parser().parse_args(["head", "--config-ssm", "/x/serve-config", "--rollout", ROLLOUT])
    argv = bootstrap.sync_argv(args)
    assert argv[-2:] == ["--rollout", ROLLOUT]
    service = bootstrap.systemd_units("/opt/rayserve", argv, 30)["rayserve-sync.service"]
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_start.removeprefix("ExecStart=").replace("%%", "%"))  # systemd's rules, for these words
    assert words[words.index("--rollout") + 1] == ROLLOUT
    assert bootstrap.parser().parse_args(words[3:]).rollout == ROLLOUT  # what the unit runs parses back


def _args(dashboard_port: int) -> argparse.Namespace:
    return argparse.Namespace(mode="local", rollout=ROLLOUT, dashboard_port=dashboard_port)


def test_a_config_whose_code_did_not_change_has_nothing_to_step():
    live = {"applications": [{**APP, "deployments": [{"name": "Echo", "num_replicas": 1}]}]}
    target = {"applications": [{**APP, "deployments": [{"name": "Echo", "num_replicas": 2}]}]}
    assert bootstrap.roll_out(_args(free_port()), f"http://127.0.0.1:{free_port()}", live, target) is None


def test_a_rollout_that_cannot_reach_the_dashboard_fails_the_sync_with_its_cause():
    live = {"applications": [APP]}
    target = {"applications": [{**APP, "import_path": "v2.echo:app"}]}
    with pytest.raises(RuntimeError, match=r"the gated rollout of Serve config \w+ failed: rollout failed: "):
        bootstrap.roll_out(_args(free_port()), f"http://127.0.0.1:{free_port()}", live, target)


def test_the_sync_knows_serve_s_ingress_and_under_haproxy_the_rollout_holds_the_heads():
    """The sync timer runs with the head's --serve-env, so its rollout holds HAProxy's servers (rollout.ingress_hold)
    where Ray put the admin socket; under Serve's own proxy there is nothing to hold."""
    haproxy = ["--serve-env", "RAY_SERVE_ENABLE_HA_PROXY=1", "--serve-env", "RAY_SERVE_THROUGHPUT_OPTIMIZED=1"]
    args = bootstrap.parser().parse_args(["head", "--config-ssm", "/x/serve-config", *haproxy, "--rollout", ROLLOUT])
    argv = bootstrap.sync_argv(args)
    sync = bootstrap.parser().parse_args(["sync", *argv])
    assert sync.serve_env == args.serve_env == [("RAY_SERVE_ENABLE_HA_PROXY", "1"),
                                                ("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")]
    request = bootstrap.rollout_request(sync, "http://127.0.0.1:8265", {"applications": [APP]}, {"applications": [APP]})
    assert request["haproxy_socket"] == RAY_HAPROXY_SOCKET
    own_proxy = bootstrap.parser().parse_args(["sync", "--config-file", "c.json", "--rollout", ROLLOUT])
    assert bootstrap.rollout_request(own_proxy, "http://127.0.0.1:8265", {"applications": [APP]},
                                     {"applications": [APP]})["haproxy_socket"] is None
