"""What every KubeRay platform (eks, kubernetes) describes alike: its nodes are the RayService's pods, `rayserve
render` shows the Kubernetes objects and the operator's Helm values, `rayserve status` gives kubectl commands."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from pydantic import Field

from rayserve_pulumi.kuberay.settings import (
    INCREMENTAL_MIN_CHART, INCREMENTAL_UPGRADE, KubeRaySettings, RayServiceSettings,
)
from rayserve_pulumi.platform_spec import Node, PlatformSpec, StatusReport, cloud_documents, k8s_manifest

__all__ = ["KubeRaySpec"]


class KubeRaySpec(PlatformSpec):
    """A platform whose Ray cluster is a KubeRay RayService (subclasses say how the cluster is reached)."""

    sections = {
        "kuberay": (KubeRaySettings, Field(KubeRaySettings(), description="platforms eks and kubernetes: the operator")),
        "ray_service": (RayServiceSettings, Field(RayServiceSettings(), description="platforms eks and kubernetes: "
                                                  "the RayService")),
    }

    def section_errors(self, cfg, supplied: frozenset = frozenset()) -> list[str]:
        errors = super().section_errors(cfg, supplied)
        if (error := cfg.ray_service.open_endpoint_error("ray_service", "allowed_cidrs" in supplied)):
            errors.append(error)
        chart = tuple(int(p) for p in cfg.kuberay.chart_version.split("."))
        if cfg.ray_service.upgrade_strategy == INCREMENTAL_UPGRADE and chart < INCREMENTAL_MIN_CHART:
            floor = ".".join(map(str, INCREMENTAL_MIN_CHART))
            errors.append(f"kuberay.chart_version {cfg.kuberay.chart_version}: upgrade_strategy {INCREMENTAL_UPGRADE} "
                          f"needs {floor} or later (earlier charts leave KubeRay's RayServiceIncrementalUpgrade "
                          "feature gate off)")
        return errors

    def kubectl(self, cfg) -> tuple[str, str]:
        """(how to get the cluster's credentials, the kubectl prefix) for `status`."""
        raise NotImplementedError

    def nodes(self, cfg) -> list[Node]:
        rs = cfg.ray_service
        head_cpus = rs.head.num_cpus if rs.head.num_cpus is not None else math.floor(rs.head.millicpu / 1000)
        return [("rayserve:ray_service.head", float(head_cpus), float(rs.head.gpu)),
                *((f"rayserve:ray_service.worker_groups[{g.name}]", float(math.floor(g.millicpu / 1000)), float(g.gpu))
                  for g in rs.worker_groups)]

    def render_documents(self, values: dict, cfg, serve_config: dict, program_dir: Path) -> list[tuple[str, object]]:
        """The operator's Helm values, every Kubernetes object and every cloud resource, as computed under
        Pulumi's mocks."""
        from rayserve_pulumi.preview import preview

        docs: list[tuple[str, object]] = []
        rendered = preview(values, "render", program_dir=program_dir, redact=True, validated=(cfg, serve_config))
        for res in rendered.resources:
            if res.type == "kubernetes:helm.sh/v3:Release":
                i = res.inputs
                repo = (i.get("repositoryOpts") or {}).get("repo")  # an OCI chart names its registry itself
                source = f"chart {i['chart']} {i['version']}" + (f" from {repo}" if repo else "")
                docs.append((f"Helm release {i['name']}: {source} into {i['namespace']}; values:", i.get("values") or {}))
            elif res.type.startswith("kubernetes:") and not res.type.startswith("kubernetes:index:"):
                docs.append((f"{res.type} ({res.name})", k8s_manifest(res)))
        return docs + cloud_documents(rendered)

    def status(self, cfg, serve_config: dict, state: Optional[Path]) -> StatusReport:
        rs = cfg.ray_service
        intro, kubectl = self.kubectl(cfg)
        head = f"$({kubectl} -n {rs.namespace} get pods -l ray.io/node-type=head,rayserve.io/service={rs.name} -o name)"
        commands = [
            f"{kubectl} -n {rs.namespace} get rayservice {rs.name} -o jsonpath='{{.status.activeServiceStatus.applicationStatuses}}'",
            f"{kubectl} -n {rs.namespace} describe rayservice {rs.name}   # conditions and events",
            f"{kubectl} -n {rs.namespace} exec {head} -- serve status   # KubeRay gives the pods the Ray token",
        ]
        return StatusReport(0, [f"{self.name}: {intro}:", *(f"  {c}" for c in commands)],
                            {"platform": self.name, "live": None, "how": intro, "commands": commands})
