"""Every Kubernetes object any stack declares, checked against the official OpenAPI schema of the
stack's Kubernetes version (the schemas kubernetes-validate ships, strict: unknown fields refused).

The mock monitor hands numbers over as floats (protobuf Struct), so whole floats are turned back into
integers first, as the real provider's typed inputs would be. The operator's Helm values are checked
as far as they are Kubernetes objects (its container resources); the chart's own values schema is not
available offline.
"""
from __future__ import annotations

import copy

import pytest

from rayserve_pulumi.platform_spec import k8s_manifest
from tests.pulumi_harness import all_stacks, stack_values

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency")
KUBERAY_STACKS = [s for s in all_stacks() if stack_values(s)["platform"] in ("eks", "kubernetes")]
# checked against the KubeRay CRDs, the Prometheus Operator's schemas, or below
CRD_KINDS = ("kubernetes:ray.io/", "kubernetes:helm.sh/", "kubernetes:monitoring.coreos.com/", "kubernetes:yaml/",
             "kubernetes:karpenter")  # not built-in objects (Karpenter's: tests/aws/test_karpenter.py)


def integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integers(v) for v in value]
    return value


def k8s_version(stack: str) -> str:
    """The stack's EKS version; an existing cluster (kubernetes platform) is checked against 1.33's schemas."""
    return f"{(stack_values(stack).get('eks') or {}).get('kubernetes_version', '1.33')}.0"


def schema_errors(manifest: dict, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(integers(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{manifest['kind']} {manifest.get('metadata', {}).get('name')}: {exc.message}"]
    return []


@pytest.mark.parametrize("stack", KUBERAY_STACKS)
def test_every_kubernetes_object_of_the_stack_passes_the_official_schema(rendered, stack):
    objects = [r for r in rendered[stack].resources if r.type.startswith("kubernetes:") and not r.type.startswith(CRD_KINDS)]
    kinds = {r.type.rsplit(":", 1)[1] for r in objects}
    # the eks platform makes its cluster's StorageClass; an existing cluster (kubernetes) has its own
    assert {"Namespace", *(["StorageClass"] if stack_values(stack)["platform"] == "eks" else [])} <= kinds
    if stack_values(stack)["ray_service"].get("checkpoint", {}).get("gcs_fault_tolerance", True):
        assert {"Secret", "Service", "StatefulSet"} <= kinds
    errors = [e for r in objects for e in schema_errors(k8s_manifest(r), k8s_version(stack))]
    assert errors == []


@pytest.mark.parametrize("stack", KUBERAY_STACKS)
def test_the_operators_helm_values_hold_valid_container_resources(rendered, stack):
    values = rendered[stack].one("kubernetes:helm.sh/v3:Release", "kuberay").inputs["values"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kuberay-operator"}, "spec": {"containers": [{
        "name": "operator", "image": f"kuberay/operator:{values['image']['tag']}", "resources": values["resources"]}]}}
    assert schema_errors(pod, k8s_version(stack)) == []


def test_prometheus_resources_in_the_monitoring_chart_values_are_valid(rendered):
    values = rendered["prod"].one("kubernetes:helm.sh/v3:Release", "kube-prometheus-stack").inputs["values"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "prometheus"}, "spec": {"containers": [{
        "name": "prometheus", "image": "quay.io/prometheus/prometheus:v3.5.0",
        "resources": values["prometheus"]["prometheusSpec"]["resources"]}]}}
    assert schema_errors(pod, k8s_version("prod")) == []


def test_the_schema_check_refuses_a_broken_object(rendered):
    sts = next(r for r in rendered["prod"].resources if r.type == "kubernetes:apps/v1:StatefulSet")
    broken = copy.deepcopy(k8s_manifest(sts))
    broken["spec"]["replicas"] = "one"
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy2"] = "Always"
    assert schema_errors(broken, k8s_version("prod"))
