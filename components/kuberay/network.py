"""NetworkPolicies for a RayService's namespace: nothing reaches a pod unless a policy below lets it.

- Ray pods of the service reach each other on every port (GCS, raylets, object transfer, workers).
- The KubeRay operator's namespace reaches the head's dashboard (it applies and reads Serve configs).
- Anyone the load balancer or cluster lets through reaches Serve's port, and only that port.
- Only Ray pods of the service reach the GCS Redis.
Enforced by the VPC CNI's network policy agent (the EKS platform turns it on) or any CNI that does.
`render_network_policies` is pure, so the manifests can be checked against Kubernetes' schema.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.constants import DASHBOARD_PORT, REDIS_PORT, SERVICE_LABEL

__all__ = ["NAMESPACE_LABEL", "HEAD_LABEL", "render_network_policies", "declare"]

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
HEAD_LABEL = {"ray.io/node-type": "head"}  # KubeRay's label on head pods


def _policy(name: str, namespace: str, selector: dict, ingress: list[dict]) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {"matchLabels": selector} if selector else {}, "policyTypes": ["Ingress"],
                     "ingress": ingress}}


def render_network_policies(service: str, namespace: str, operator_namespace: str, serve_port: int,
                            redis_labels: Optional[dict] = None, metrics: Optional[tuple[str, list[int]]] = None) -> list[dict]:
    """The policies for one RayService. `metrics` = (monitoring namespace, Ray's metrics ports) lets that
    namespace's Prometheus scrape Ray pods."""
    ray = {SERVICE_LABEL: service}
    policies = [
        _policy(f"{service}-default-deny", namespace, {}, []),
        _policy(f"{service}-ray-internal", namespace, ray, [{"from": [{"podSelector": {"matchLabels": ray}}]}]),
        _policy(f"{service}-operator-to-dashboard", namespace, {**ray, **HEAD_LABEL}, [{
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: operator_namespace}}}],
            "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]}]),
        _policy(f"{service}-serve", namespace, ray, [{"ports": [{"protocol": "TCP", "port": serve_port}]}]),
    ]
    if redis_labels:
        policies.append(_policy(f"{service}-redis-from-ray", namespace, redis_labels, [{
            "from": [{"podSelector": {"matchLabels": ray}}], "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}]))
    if metrics:
        policies.append(_policy(f"{service}-metrics-from-monitoring", namespace, ray, [{
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: metrics[0]}}}],
            "ports": [{"protocol": "TCP", "port": port} for port in metrics[1]]}]))
    return policies


def declare(name: str, manifests: list[dict], opts: pulumi.ResourceOptions) -> list[k8s.networking.v1.NetworkPolicy]:
    return [k8s.networking.v1.NetworkPolicy(f"{name}-{m['metadata']['name']}", metadata=m["metadata"], spec=m["spec"],
                                            opts=opts) for m in manifests]
