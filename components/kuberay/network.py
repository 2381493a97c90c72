"""NetworkPolicies for a RayService's namespace: nothing reaches a pod unless a policy below lets it.

- Ray pods of the service reach each other on every port (GCS, raylets, object transfer, workers).
- The KubeRay operator's namespace reaches the head's dashboard (it applies and reads Serve configs).
- Anyone the load balancer or cluster lets through reaches Serve's port, and only that port.
- Only Ray pods of the service reach the GCS Redis.
- Egress (when the platform names the API server's addresses): nothing leaves a pod of the namespace but DNS
  to the cluster's DNS pods, Ray to Ray, Ray to its Redis, the head (its autoscaler sidecar) to the API server
  on 443, and, where the stack opens it (`ray_service.egress: https`, e.g. a model hub), HTTPS from Ray pods.
Enforced by the VPC CNI's network policy agent (the EKS platform turns it on) or any CNI that does.
`render_network_policies` is pure, so the manifests can be checked against Kubernetes' schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.constants import DASHBOARD_PORT, NODE_TYPE_LABEL, REDIS_PORT, SERVICE_LABEL

__all__ = ["NAMESPACE_LABEL", "HEAD_LABEL", "DNS_LABELS", "Egress", "render_network_policies", "declare"]

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
HEAD_LABEL = {NODE_TYPE_LABEL: "head"}
DNS_LABELS = {"k8s-app": "kube-dns"}  # CoreDNS in kube-system (EKS' add-on and upstream's manifests)


@dataclass(frozen=True)
class Egress:
    """What pods of the namespace may reach beyond each other: the API server's addresses (443) and, with
    `https`, any address on 443."""

    api_server_cidrs: Sequence  # plain strings or Outputs (e.g. the VPC's range, where EKS' endpoint ENIs are)
    https: bool = False


def _policy(name: str, namespace: str, selector: dict, ingress: Optional[list[dict]] = None,
            egress: Optional[list[dict]] = None) -> dict:
    spec: dict = {"podSelector": {"matchLabels": selector} if selector else {},
                  "policyTypes": [*(["Ingress"] if ingress is not None else []), *(["Egress"] if egress is not None else [])]}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _egress_policies(service: str, namespace: str, ray: dict, redis_labels: Optional[dict], egress: Egress) -> list[dict]:
    dns = {"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "kube-system"}},
                   "podSelector": {"matchLabels": DNS_LABELS}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    policies = [
        _policy(f"{service}-default-deny-egress", namespace, {}, egress=[]),
        _policy(f"{service}-dns", namespace, {}, egress=[dns]),
        _policy(f"{service}-ray-to-ray", namespace, ray, egress=[{"to": [{"podSelector": {"matchLabels": ray}}]}]),
        _policy(f"{service}-head-to-api-server", namespace, {**ray, **HEAD_LABEL}, egress=[{
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.api_server_cidrs],
            "ports": [{"protocol": "TCP", "port": 443}]}]),
    ]
    if redis_labels:
        policies.append(_policy(f"{service}-ray-to-redis", namespace, ray, egress=[{
            "to": [{"podSelector": {"matchLabels": redis_labels}}], "ports": [{"protocol": "TCP", "port": REDIS_PORT}]}]))
    if egress.https:
        policies.append(_policy(f"{service}-ray-https", namespace, ray, egress=[{
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]))
    return policies


def render_network_policies(service: str, namespace: str, operator_namespace: str, serve_port: int,
                            redis_labels: Optional[dict] = None, metrics: Optional[tuple[str, list[int]]] = None,
                            egress: Optional[Egress] = None) -> list[dict]:
    """The policies for one RayService. `metrics` = (monitoring namespace, Ray's metrics ports) lets that
    namespace's Prometheus scrape Ray pods; `egress` contains what leaves the namespace (None: not restricted)."""
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
    if egress is not None:
        policies += _egress_policies(service, namespace, ray, redis_labels, egress)
    return policies


def declare(name: str, manifests: list[dict], opts: pulumi.ResourceOptions) -> list[k8s.networking.v1.NetworkPolicy]:
    return [k8s.networking.v1.NetworkPolicy(f"{name}-{m['metadata']['name']}", metadata=m["metadata"], spec=m["spec"],
                                            opts=opts) for m in manifests]
