"""KubeRayOperator: namespace, the ray.io CRDs as resources of their own, and the pinned `kuberay-operator` Helm
chart watching the RayService namespaces only.

Helm installs a chart's CRDs once and never upgrades them, so a chart bump would leave the old KubeRay CRDs;
declared here from the same release's tag, a version bump updates them (server-side apply). The operator's
RBAC is Roles in the namespaces it watches (the chart's multi-namespace install), not a ClusterRole."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import KubeRaySettings
from rayserve_pulumi.constants import KUBERAY_CHART as CHART, KUBERAY_OPERATOR_DIGESTS
from rayserve_pulumi.kuberay.security import pod_security_labels

__all__ = ["CRDS", "crd_urls", "operator_image_tag", "operator_values", "KubeRayOperatorArgs", "KubeRayOperator"]

CRDS = ("rayclusters", "rayjobs", "rayservices")  # the ray.io CRDs of a KubeRay release


def crd_urls(version: str) -> list[str]:
    """The CRDs of KubeRay release `version`, from its tag (the chart's crds/ are the same files)."""
    return [f"https://raw.githubusercontent.com/ray-project/kuberay/v{version}/ray-operator/config/crd/bases/"
            f"ray.io_{crd}.yaml" for crd in CRDS]


def operator_image_tag(version: str) -> str:
    """The chart's `image.tag`: the release's tag, with its digest where the package knows it (the chart writes
    `repository:tag`, so `v1.7.0@sha256:...` pins the image)."""
    digest = KUBERAY_OPERATOR_DIGESTS.get(version)
    return f"v{version}@{digest}" if digest else f"v{version}"


def operator_values(settings: KubeRaySettings, watch_namespaces: Sequence[str] = ()) -> dict:
    """Helm values: bounded resources, and the namespaces the operator watches (Roles there, no ClusterRole)."""
    watch = {"watchNamespace": list(watch_namespaces), "singleNamespaceInstall": True} if watch_namespaces else {}
    return {**watch,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "image": {"tag": operator_image_tag(settings.chart_version)},
    }


@dataclass(frozen=True)
class KubeRayOperatorArgs:
    settings: KubeRaySettings = arg("chart version, namespace and Helm repository")
    watch_namespaces: Sequence[str] = arg("the namespaces whose RayServices it manages (empty: the whole cluster)",
                                          default_factory=tuple)


class KubeRayOperator(pulumi.ComponentResource):
    """Depend on this component so RayServices are deleted before the operator that clears their finalizers."""

    def __init__(self, name: str, args: KubeRayOperatorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:KubeRayOperator", name, None, opts)
        s = args.settings
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns", metadata={"name": s.namespace, "labels": pod_security_labels("restricted")},
            opts=pulumi.ResourceOptions(parent=self))
        self.crds = [k8s.yaml.v2.ConfigFile(f"{name}-crd-{crd}", file=url, opts=pulumi.ResourceOptions(parent=self))
                     for crd, url in zip(CRDS, crd_urls(s.chart_version))]
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=CHART,
            chart=CHART,
            version=s.chart_version,
            repository_opts={"repo": s.repository},
            namespace=self.namespace.metadata.name,
            skip_crds=True,  # declared above
            atomic=True,
            cleanup_on_fail=True,
            wait_for_jobs=True,
            timeout=600,
            values=operator_values(s, args.watch_namespaces),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.crds),
        )
        self.chart_version = self.release.version
        self.register_outputs({"namespace": self.namespace.metadata.name, "chart_version": self.chart_version,
                               "status": self.release.status})
