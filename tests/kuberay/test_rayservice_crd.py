"""Rendered RayService / RayCluster specs against the real KubeRay v1.7.0 CRD schemas (../shared):
the OpenAPI schema with jsonschema, and the CRDs' CEL rules (x-kubernetes-validations) with cel-python,
evaluated on every field the manifest sets (transition rules with oldSelf = self, as on create)."""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi.aws.eks import placements
from rayserve_pulumi.kuberay import GcsStorageRef
from rayserve_pulumi.config import parse_stack_config
from rayserve_pulumi.kuberay import render_rayservice
from rayserve_pulumi.config import build_serve_config
from tests.pulumi_harness import stack_values

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency (pyproject [test])")

CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds"
pytestmark = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"KubeRay CRDs not present at {CRD_DIR}")
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/rayserve-apps@sha256:" + "ab" * 32


@lru_cache(maxsize=None)
def crd_schema(kind_file: str) -> dict:
    crd = yaml.safe_load((CRD_DIR / kind_file).read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def cel_errors(schema: dict, value, path: str = "") -> list[str]:
    """Evaluate the CEL rules of `schema` and of every sub-schema the value reaches."""
    import celpy

    found = []
    for rule in schema.get("x-kubernetes-validations") or []:
        env = celpy.Environment()
        cel_value = celpy.json_to_cel(value)
        if not env.program(env.compile(rule["rule"])).evaluate({"self": cel_value, "oldSelf": cel_value}):
            found.append(f"{path or '/'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, item in value.items():
            sub = (schema.get("properties") or {}).get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                found += cel_errors(sub, item, f"{path}/{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += cel_errors(schema["items"], item, f"{path}/{i}")
    return found


def errors(schema: dict, doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)] + \
        cel_errors(schema, doc)


def rendered(stack: str) -> dict:
    cfg = parse_stack_config(stack_values(stack))
    storage = GcsStorageRef("rayserve-ckpt-redis.ray.svc.cluster.local:6379", "rayserve-ckpt-redis-auth",
                            model_cache_claim="rayserve-ckpt-model-cache") if cfg.ray_service.checkpoint.gcs_fault_tolerance else None
    return render_rayservice(cfg.ray_service, build_serve_config(cfg.serve), IMAGE, placements(cfg.ray_service, cfg.eks), storage)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_rendered_rayservice_is_valid_against_the_crd(stack):
    manifest = rendered(stack)
    assert errors(crd_schema("ray.io_rayservices.yaml"), manifest) == []
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"},
               "spec": manifest["spec"]["rayClusterConfig"]}
    assert errors(crd_schema("ray.io_rayclusters.yaml"), cluster) == []


def test_the_crd_check_rejects_a_broken_spec():
    manifest = copy.deepcopy(rendered("prod"))
    group = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    del group["groupName"]
    group["minReplicas"] = "two"
    found = errors(crd_schema("ray.io_rayservices.yaml"), manifest)
    assert any("groupName" in e for e in found) and any("minReplicas" in e for e in found)


def test_the_cel_rules_are_evaluated():
    cel = pytest.importorskip("celpy", reason="cel-python is a test dependency")
    assert cel
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c"},
               "spec": {**rendered("dev")["spec"]["rayClusterConfig"], "managedBy": "someone-else"}}
    found = errors(crd_schema("ray.io_rayclusters.yaml"), cluster)
    assert any("managedBy field value must be either" in e for e in found), found
