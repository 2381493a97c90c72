"""What every KubeRay platform (eks, kubernetes) describes alike: its nodes are the RayService's pods, `rayserve
render` shows the Kubernetes objects and the operator's Helm values, `rayserve status` gives kubectl commands."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from pydantic import Field

from rayserve_pulumi.kuberay.settings import (
    INCREMENTAL_MIN_CHART, INCREMENTAL_UPGRADE, KubeRaySettings, RayServiceSettings, gate_errors, gate_needed,
)
from rayserve_pulumi.constants import ROLLOUT_REASON_ANNOTATION, ROLLOUT_VERDICT_ANNOTATION
from rayserve_pulumi.platform_spec import Node, PlatformSpec, StatusReport, cloud_documents, k8s_manifest

__all__ = ["KubeRaySpec"]


def _changed_paths(old, new, path: str = "", depth: int = 6):
    """Where two rendered specs differ, as paths a reviewer can find (at most `depth` levels deep)."""
    if old == new:
        return
    if depth and isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _changed_paths(old.get(key), new.get(key), f"{path}.{key}" if path else key, depth - 1)
    elif depth and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _changed_paths(a, b, f"{path}[{i}]", depth - 1)
    else:
        yield path


class KubeRaySpec(PlatformSpec):
    """A platform whose Ray cluster is a KubeRay RayService (subclasses say how the cluster is reached)."""

    gated_rollouts = True  # `rollout` gates an incremental upgrade (kuberay.rollout_gate)

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
        errors += gate_errors(cfg.ray_service, cfg.rollout, cfg.metrics, "rollout" in cfg.model_fields_set)
        return errors

    def placements(self, cfg) -> Optional[dict]:
        """HEAD / worker group name -> kuberay.rayservice.Placement on this platform's nodes (None: anywhere)."""
        return None

    def kubectl(self, cfg) -> tuple[str, str]:
        """(how to get the cluster's credentials, the kubectl prefix) for `status`."""
        raise NotImplementedError

    def nodes(self, cfg) -> list[Node]:
        rs = cfg.ray_service
        head_cpus = rs.head.num_cpus if rs.head.num_cpus is not None else math.floor(rs.head.millicpu / 1000)
        return [("rayserve:ray_service.head", float(head_cpus), float(rs.head.gpu)),
                *((f"rayserve:ray_service.worker_groups[{g.name}]", float(math.floor(g.millicpu / 1000)), float(g.gpu))
                  for g in rs.worker_groups)]

    def rollout_changes(self, old, new) -> tuple[list, bool]:
        """The image (hence the code) and the pods live in `rayClusterConfig`: a change there is a new cluster
        (upgradeStrategy NewCluster), one traffic moves to in steps (NewClusterWithIncrementalUpgrade), or
        nothing (None); the Serve config alone is applied to the running cluster."""
        from rayserve_pulumi.kuberay.rayservice import render_rayservice
        from rayserve_pulumi.rollout.plan import INCREMENTAL, NEW_CLUSTER, NOT_APPLIED, Change

        def cluster(p) -> dict:
            return render_rayservice(p.cfg.ray_service, p.serve_config, p.image, self.placements(p.cfg),
                                     serve_env=p.cfg.serve.runtime_env())["spec"]["rayClusterConfig"]

        was, now = cluster(old), cluster(new)
        keys = tuple(_changed_paths(was, now))
        if not keys:
            return [], False
        rs = new.cfg.ray_service
        pods = 1 + sum(g.replicas for g in rs.worker_groups)
        if rs.upgrade_strategy == "None":
            return [Change("cluster", NOT_APPLIED, keys, note="upgradeStrategy None: KubeRay keeps the running "
                           "cluster; only the Serve config is applied")], False
        if rs.incremental_upgrade is not None:
            up = rs.incremental_upgrade
            surge = 1 + math.ceil(sum(g.replicas for g in rs.worker_groups) * up.max_surge_percent / 100)
            note = (f"a new cluster beside the serving one, {up.step_size_percent} % of traffic every {up.interval_s} s "
                    f"through Gateway class {up.gateway_class}; its capacity grows by at most {up.max_surge_percent} % "
                    "at a time")
            if gate_needed(rs, new.cfg.rollout, new.cfg.metrics):
                r = new.cfg.rollout
                note += (f"; gated: errors above {r.max_error_rate:g}, p99 over {r.max_p99_ratio:g}x the serving "
                         f"cluster's, or not RUNNING within {r.step_budget_s:g} s returns the RayService to its last "
                         "good spec")
            return [Change("cluster", INCREMENTAL, keys, surge, "pods", note)], False
        return [Change("cluster", NEW_CLUSTER, keys, pods, "pods", "a whole new cluster beside the serving one; "
                       "traffic switches once it is ready, then the old one is deleted")], False

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
        if gate_needed(rs, cfg.rollout, cfg.metrics):  # kubectl's JSONPath: dots in a key escaped
            verdict, reason = (key.replace(".", "\\.") for key in (ROLLOUT_VERDICT_ANNOTATION, ROLLOUT_REASON_ANNOTATION))
            commands.append(f"{kubectl} -n {rs.namespace} get rayservice {rs.name} -o jsonpath='{{.metadata.annotations."
                            f"{verdict}}}{{\"\\n\"}}{{.metadata.annotations.{reason}}}'   # the rollout gate's verdict "
                            "(promoted- or rolled-back-<version>) and why")
        return StatusReport(0, [f"{self.name}: {intro}:", *(f"  {c}" for c in commands)],
                            {"platform": self.name, "live": None, "how": intro, "commands": commands})
