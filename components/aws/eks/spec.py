"""The `eks` platform's description: a KubeRay platform (kuberay.spec) on an EKS cluster the stack creates:
its sections, the Ray pods' fit on its node groups, and the kubeconfig the stack outputs."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from rayserve_pulumi.aws.eks.settings import EksSettings
from rayserve_pulumi.aws.types import AwsTags
from rayserve_pulumi.kuberay.spec import KubeRaySpec

__all__ = ["EksSpec", "SPEC"]


class EksSpec(KubeRaySpec):
    name = "eks"
    component = "rayserve_pulumi.aws.eks:EksPlatform"
    provider_component = "rayserve_pulumi.aws.eks.service:EksService"
    sections = {**KubeRaySpec.sections,
                "eks": (Optional[EksSettings], Field(None, description="platform eks: the cluster")),
                "tags": (AwsTags, Field(default_factory=dict, description="AWS tags on every resource (eks, vm)"))}
    required_sections = ("eks",)
    needs_image = True
    declares_aws = True

    def placements(self, cfg) -> dict:
        from rayserve_pulumi.aws.eks.platform import placements

        return placements(cfg.ray_service, cfg.eks)

    def section_errors(self, cfg, supplied: frozenset = frozenset()) -> list[str]:
        errors = super().section_errors(cfg, supplied)
        if cfg.eks is not None:
            from rayserve_pulumi.config.stack import check_node_groups

            try:
                check_node_groups(cfg.ray_service, cfg.eks)
            except ValueError as exc:
                errors.append(str(exc))
            if cfg.eks.serve_tls_certificate_arn and cfg.ray_service.service_type != "LoadBalancer":
                errors.append("eks.serve_tls_certificate_arn is the Serve NLB's: set ray_service.service_type "
                              "LoadBalancer")
        return errors

    def stack_errors(self, cfg, serve_config: dict, apps: dict, code) -> list[str]:
        from rayserve_pulumi.config.checks import eks_fit_errors

        return eks_fit_errors(cfg)

    def kubectl(self, cfg) -> tuple[str, str]:
        return ("with the stack's kubeconfig (pulumi stack output kubeconfig --show-secrets > kubeconfig.json; "
                "export KUBECONFIG=$PWD/kubeconfig.json)", "kubectl")


SPEC = EksSpec()
