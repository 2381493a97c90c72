"""The `eks` platform's description: its sections, its nodes (the Ray pods' CPU and GPU), the pods' fit on
the node groups, the Kubernetes manifests `rayserve render` shows and the commands `rayserve status` gives."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from rayserve_pulumi.platform_spec import Node, PlatformSpec, k8s_manifest


class EksSpec(PlatformSpec):
    name = "eks"
    component = "rayserve_pulumi.aws.eks:EksPlatform"
    required_sections = ("eks",)
    needs_image = True

    def section_errors(self, cfg) -> list[str]:
        errors = super().section_errors(cfg)
        if cfg.eks is not None:
            from rayserve_pulumi.config.stack import check_node_groups

            try:
                check_node_groups(cfg.ray_service, cfg.eks)
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    def nodes(self, cfg) -> list[Node]:
        rs = cfg.ray_service
        head_cpus = rs.head.num_cpus if rs.head.num_cpus is not None else math.floor(rs.head.millicpu / 1000)
        return [("rayserve:ray_service.head", float(head_cpus), float(rs.head.gpu)),
                *((f"rayserve:ray_service.worker_groups[{g.name}]", float(math.floor(g.millicpu / 1000)), float(g.gpu))
                  for g in rs.worker_groups)]

    def stack_errors(self, cfg, serve_config: dict, apps: dict, code) -> list[str]:
        from rayserve_pulumi.config.checks import eks_fit_errors

        return eks_fit_errors(cfg)

    def render_documents(self, values: dict, cfg, serve_config: dict, program_dir: Path) -> list[tuple[str, object]]:
        """The operator's Helm values and every Kubernetes object, as computed under Pulumi's mocks."""
        from rayserve_pulumi.preview import preview

        docs: list[tuple[str, object]] = []
        for res in preview(values, "render", program_dir=program_dir, redact=True).resources:
            if res.type == "kubernetes:helm.sh/v3:Release":
                i = res.inputs
                docs.append((f"Helm release {i['name']}: chart {i['chart']} {i['version']} from "
                             f"{i['repositoryOpts']['repo']} into {i['namespace']}; values:", i.get("values") or {}))
            elif res.type.startswith("kubernetes:") and not res.type.startswith("kubernetes:index:"):
                docs.append((f"{res.type} ({res.name})", k8s_manifest(res)))
        return docs

    def status(self, cfg, serve_config: dict, state: Optional[Path]) -> tuple[int, list[str]]:
        rs = cfg.ray_service
        head = f"$(kubectl -n {rs.namespace} get pods -l ray.io/node-type=head,rayserve.io/service={rs.name} -o name)"
        return 0, [
            "eks: with the stack's kubeconfig (pulumi stack output kubeconfig --show-secrets > kubeconfig.json; "
            "export KUBECONFIG=$PWD/kubeconfig.json):",
            f"  kubectl -n {rs.namespace} get rayservice {rs.name} -o jsonpath='{{.status.activeServiceStatus.applicationStatuses}}'",
            f"  kubectl -n {rs.namespace} describe rayservice {rs.name}   # conditions and events",
            f"  kubectl -n {rs.namespace} exec {head} -- serve status   # KubeRay gives the pods the Ray token",
        ]


SPEC = EksSpec()
