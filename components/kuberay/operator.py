"""KubeRayOperator: namespace + the pinned `kuberay-operator` Helm chart (installs the ray.io CRDs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import KubeRaySettings
from rayserve_pulumi.constants import KUBERAY_CHART as CHART

__all__ = ["operator_values", "KubeRayOperatorArgs", "KubeRayOperator"]


def operator_values(settings: KubeRaySettings) -> dict:
    """Helm values: bounded resources and the chart's own CRDs."""
    return {
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "image": {"tag": f"v{settings.chart_version}"},
    }


@dataclass(frozen=True)
class KubeRayOperatorArgs:
    settings: KubeRaySettings = arg("chart version, namespace and Helm repository")


class KubeRayOperator(pulumi.ComponentResource):
    """Depend on this component so RayServices are deleted before the operator that clears their finalizers."""

    def __init__(self, name: str, args: KubeRayOperatorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:KubeRayOperator", name, None, opts)
        s = args.settings
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": s.namespace}, opts=pulumi.ResourceOptions(parent=self))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=CHART,
            chart=CHART,
            version=s.chart_version,
            repository_opts={"repo": s.repository},
            namespace=self.namespace.metadata.name,
            skip_crds=False,
            atomic=True,
            cleanup_on_fail=True,
            wait_for_jobs=True,
            timeout=600,
            values=operator_values(s),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.chart_version = self.release.version
        self.register_outputs({"namespace": self.namespace.metadata.name, "chart_version": self.chart_version,
                               "status": self.release.status})
