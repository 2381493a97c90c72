"""EnvoyGateway: a Gateway API controller for KubeRay's incremental upgrade, where the cluster has none.

Envoy Gateway's own Helm chart (pinned, from its OCI registry; it installs the Gateway API CRDs as templates, so
a chart bump upgrades them) in a namespace of its own enforcing the restricted Pod Security level (its
controller, certgen job and Envoy proxies run as that level requires), and the GatewayClass KubeRay's Gateway
names (`incremental_upgrade.gateway_class`), owned by that controller. KubeRay creates the Gateway and HTTPRoute
itself; Envoy Gateway gives the Gateway its proxies and its address (a LoadBalancer Service by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.constants import (
    ENVOY_GATEWAY_CHART, ENVOY_GATEWAY_CONTROLLER, ENVOY_GATEWAY_REPOSITORY, ENVOY_GATEWAY_VERSION,
)
from rayserve_pulumi.kuberay.rayservice import GATEWAY_API
from rayserve_pulumi.kuberay.security import pod_security_labels

__all__ = ["ENVOY_GATEWAY_NAMESPACE", "render_gateway_class", "EnvoyGatewayArgs", "EnvoyGateway"]

ENVOY_GATEWAY_NAMESPACE = "envoy-gateway-system"  # the chart's documented namespace; its proxies run there too


def render_gateway_class(name: str) -> dict:
    return {"apiVersion": GATEWAY_API, "kind": "GatewayClass", "metadata": {"name": name},
            "spec": {"controllerName": ENVOY_GATEWAY_CONTROLLER,
                     "description": "KubeRay's incremental upgrades (rayserve-pulumi)"}}


@dataclass(frozen=True)
class EnvoyGatewayArgs:
    gateway_class: str = arg("the GatewayClass to create for Envoy Gateway (KubeRay's Gateway names it)")


class EnvoyGateway(pulumi.ComponentResource):
    """Outputs `controller`: the GatewayClass' controllerName."""

    def __init__(self, name: str, args: EnvoyGatewayArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:EnvoyGateway", name, None, opts)
        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={
            "name": ENVOY_GATEWAY_NAMESPACE, "labels": pod_security_labels("restricted")},
            opts=pulumi.ResourceOptions(parent=self))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart", name="eg", chart=f"{ENVOY_GATEWAY_REPOSITORY}/{ENVOY_GATEWAY_CHART}",
            version=ENVOY_GATEWAY_VERSION, namespace=ENVOY_GATEWAY_NAMESPACE, atomic=True, cleanup_on_fail=True,
            timeout=600, values={"config": {"envoyGateway": {"gateway": {"controllerName": ENVOY_GATEWAY_CONTROLLER}}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
        cls = render_gateway_class(args.gateway_class)
        k8s.apiextensions.CustomResource(f"{name}-class", api_version=GATEWAY_API, kind="GatewayClass",
                                         metadata=cls["metadata"], spec=cls["spec"],
                                         opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]))
        self.controller = pulumi.Output.from_input(ENVOY_GATEWAY_CONTROLLER)
        self.register_outputs({"controller": self.controller})
