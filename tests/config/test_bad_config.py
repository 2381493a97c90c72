"""A corpus of bad stack and Serve configs: each fails with a message naming the key, declaring nothing."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi.config import ConfigError
from rayserve_pulumi.config.serve import bundled_text
from tests.pulumi_harness import Rendered, render, stack_values

BASE_SERVE = yaml.safe_load(bundled_text("serve_config.yaml"))


def _set(values: dict, path: str, value) -> dict:
    values = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {}) if not key.isdigit() else node[int(key)]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return values


def _override(app: str, deployment: str, **fields):
    return ("serve.overrides", {app: {deployment: fields}})


STACK_CASES = [
    ("local", "platform", "gcp", "rayserve:platform"),
    ("local", "platform", "eks", "needs an `eks` section"),
    ("local", "bogus", 1, "rayserve:bogus"),
    ("local", *_override("fruit", "MangoStand", num_replicas="many"), "num_replicas"),
    ("local", *_override("fruit", "MangoStand", num_replicas=-1), "num_replicas: Input should be greater than 0"),
    ("local", *_override("fruit", "Banana", num_replicas=1), "rayserve:serve.overrides.fruit.Banana"),
    ("local", *_override("shop", "Till", num_replicas=1), "rayserve:serve.overrides.shop"),
    ("local", *_override("fruit", "MangoStand", replicas=2), "rayserve:serve.overrides.fruit.MangoStand.replicas"),
    ("local", *_override("fruit", "MangoStand", autoscaling_config={"min_replicas": 5, "max_replicas": 2}), "max_replicas"),
    ("local", *_override("fruit", "MangoStand", max_ongoing_requests=0), "max_ongoing_requests"),
    ("local", "serve.applications", ["fruit", "bakery"], "rayserve:serve.applications"),
    ("local", "local.dashboard_port", 70000, "rayserve:local.dashboard_port"),
    ("local", "serve.config_path", "serve_apps/missing.yaml", "rayserve:serve.config_path"),
    ("local", "platform", "gke", "Input should be 'local', 'eks' or 'vm'"),
    ("dev", "ray_service.worker_groups.0.min_replicas", 5, "min_replicas 5 > max_replicas 2"),
    ("dev", "ray_service.name", "r" * 48, "rayserve:ray_service.name"),
    ("dev", "ray_service.name", "Ray_Service", "DNS-1035"),
    ("dev", "ray_service.worker_groups.0.gpu", 1, "is not a GPU node group"),
    ("dev", "ray_service.worker_groups.0.node_group", "arm", "is not an eks node group"),
    ("dev", "image", {}, "needs image.uri"),
    ("dev", "image", {"uri": "rayproject/ray:latest"}, "rayserve:image.uri"),
    ("dev", "image", {"uri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps"}, "has no tag or a mutable one"),
    ("dev", "eks.node_groups.0.min_size", 5, "min_size <= desired_size <= max_size"),
    ("dev", "eks.node_groups", [{"name": "gpu", "instance_types": ["g5.xlarge"], "gpu": True}], "CPU node group"),
    ("vm", "vm.allowed_cidrs", ["10.0.0.0/33"], "rayserve:vm.allowed_cidrs"),
    ("vm", "vm.worker_min", 9, "worker_min <= worker_desired <= worker_max"),
    ("vm", "vm", None, "needs a `vm` section"),
    ("vm", "serve.http_port", 8265, "collides with the Ray dashboard port"),
]


def _serve_file(tmp_path: Path, mutate) -> str:
    config = copy.deepcopy(BASE_SERVE)
    mutate(config)
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _app(i: int, **fields):
    return lambda c: c["applications"][i].update(fields)


SERVE_FILE_CASES = [
    (_app(1, route_prefix="/fruit"), 'duplicate applications for route prefix "/fruit"'),
    (_app(1, name="fruit"), "duplicate"),
    (_app(0, import_path="os.path:join"), "must import from the bundled rayserve_pulumi.serve_apps package"),
    (_app(0, import_path="rayserve_pulumi.serve_apps.fruit:nope"), "has no attribute 'nope'"),
    (_app(0, import_path="rayserve_pulumi.serve_apps.missing:app"), "cannot import 'rayserve_pulumi.serve_apps.missing'"),
    (_app(0, import_path="serve_apps.fruit:app"), "must import from the bundled rayserve_pulumi.serve_apps package"),
    (_app(0, runtime_env={"working_dir": "s3://bucket/apps.zip"}), "runtime_env"),
    (_app(0, runtime_env={"pip": ["torch"]}), "runtime_env"),
    (lambda c: c["applications"][0]["deployments"][0].update(num_replicas=0), "num_replicas"),
    (lambda c: c.update(proxy_location="Everywhere"), "proxy_location"),
]


def _expect_failure(values: dict, stack: str, expected: str) -> None:
    declared = Rendered()
    with pytest.raises(ConfigError) as info:
        render(values, stack, into=declared)
    assert expected in str(info.value), str(info.value)
    assert declared.resources == [], "a bad config must not declare any resource"


@pytest.mark.parametrize("stack,path,value,expected", STACK_CASES, ids=[f"{c[0]}:{c[1]}={c[2]!r}"[:60] for c in STACK_CASES])
def test_bad_stack_config_fails_naming_the_key(stack, path, value, expected):
    values = stack_values(stack)
    values = {k: v for k, v in values.items() if k != path} if value is None else _set(values, path, value)
    _expect_failure(values, stack, expected)


@pytest.mark.parametrize("mutate,expected", SERVE_FILE_CASES, ids=[c[1][:40] for c in SERVE_FILE_CASES])
def test_bad_serve_config_fails_naming_the_field(tmp_path, mutate, expected):
    values = _set(stack_values("local"), "serve.config_path", _serve_file(tmp_path, mutate))
    _expect_failure(values, "local", expected)


def test_corpus_is_large_enough():
    assert len(STACK_CASES) + len(SERVE_FILE_CASES) >= 20
