"""The `vm` platform's description: its sections, its nodes (the head's and workers' instance types), the
Serve config's size against the SSM parameter that carries it, the user data `rayserve render` shows and
the command `rayserve status` gives."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field

from rayserve_pulumi.aws.types import AwsTags
from rayserve_pulumi.aws.vm.settings import VmSettings
from rayserve_pulumi.platform_spec import Node, PlatformSpec, StatusReport, cloud_documents

__all__ = ["VmSpec", "SPEC"]


class VmSpec(PlatformSpec):
    name = "vm"
    component = "rayserve_pulumi.aws.vm:VmPlatform"
    provider_component = "rayserve_pulumi.aws.vm.service:VmService"
    sections = {"vm": (Optional[VmSettings], Field(None, description="platform vm")),
                "tags": (AwsTags, Field(default_factory=dict, description="AWS tags on every resource (eks, vm)"))}
    required_sections = ("vm",)
    needs_image = True
    declares_aws = True
    gated_rollouts = True  # the head's sync steps a config whose applications' import path or runtime_env changed

    def section_errors(self, cfg, supplied: frozenset = frozenset()) -> list[str]:
        errors = super().section_errors(cfg, supplied)
        if cfg.vm is not None and (error := cfg.vm.open_endpoint_error("vm", "allowed_cidrs" in supplied)):
            errors.append(error)
        return errors

    def rollout_changes(self, old, new) -> tuple[list, bool]:
        """What replaces the head (the image, the AMI, anything else its node agent is started with) is a new
        cluster beside the serving one (`cluster.head_generation`, `cluster.head_ready_document`); another head
        instance type stops and starts the same head; another worker instance type rolls the workers. The Serve
        config alone is redeployed in place by the head's sync timer."""
        from rayserve_pulumi.aws.vm.cluster import head_args
        from rayserve_pulumi.rollout.plan import NEW_CLUSTER, NEW_HEAD, REPLICA_ROLL, Change

        def agent(p) -> list[str]:  # the head's node agent arguments, but for the values only AWS knows
            return head_args(p.cfg.vm, p.cfg.name, p.cfg.serve.runtime_env(), "", "", "", "", "",
                             metrics=p.cfg.metrics, rollout=p.cfg.rollout)

        new_head = (("image",) if old.image != new.image else ()) + \
            (("vm.ami_id",) if old.cfg.vm.ami_id != new.cfg.vm.ami_id else ())
        if not new_head and agent(old) != agent(new):
            new_head = ("the head's node agent settings",)
        changes = []
        if new_head:
            changes.append(Change("Ray cluster", NEW_CLUSTER, new_head, 1 + new.cfg.vm.worker_desired, "instances",
                                  "a new head and checkpoint volume beside the serving ones; once it runs every "
                                  "application it joins the balancer with a new group of workers, and the old head "
                                  "and workers go once the balancer has the new ones in service (each waited on up "
                                  f"to {new.cfg.vm.head_ready_timeout_s} s; not gated)"))
        elif old.cfg.vm.head_instance_type != new.cfg.vm.head_instance_type:
            changes.append(Change("Ray head", NEW_HEAD, ("vm.head_instance_type",), 0, "instances",
                                  "the head stops and starts as the new type, its volume kept: Serve on the head is "
                                  "down until Docker starts Ray again (GCS fault tolerance restores the applications)"))
        if not new_head and old.cfg.vm.worker_instance_type != new.cfg.vm.worker_instance_type:
            changes.append(Change("Ray workers", REPLICA_ROLL, ("vm.worker_instance_type",), 0, "instances",
                                  "the workers roll (instance refresh, half of them healthy at any time)"))
        return changes, False

    def nodes(self, cfg) -> list[Node]:
        from rayserve_pulumi.config.instances import instance_type

        return [(f"rayserve:vm.{k}", float(t.vcpu), float(t.gpus)) for k, t in
                (("head_instance_type", instance_type(cfg.vm.head_instance_type)),
                 ("worker_instance_type", instance_type(cfg.vm.worker_instance_type)))]

    def value_errors(self, cfg, serve_config: dict) -> list[str]:
        from rayserve_pulumi.config.checks import ssm_errors

        return ssm_errors(cfg, serve_config)

    def render_documents(self, values: dict, cfg, serve_config: dict, program_dir: Path) -> list[tuple[str, object]]:
        """The head's and workers' user data, the SSM parameters and the Serve config they carry, then every
        AWS resource."""
        from rayserve_pulumi.aws.vm.user_data import decode
        from rayserve_pulumi.preview import preview

        rendered = preview(values, "render", program_dir=program_dir, redact=True, validated=(cfg, serve_config))
        head = decode(rendered.one("aws:ec2/instance:Instance").inputs["userDataBase64"])
        worker = decode(rendered.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"])
        params = {p.inputs["name"]: p.inputs["type"] for p in rendered.of_type("aws:ssm/parameter:Parameter")}
        return [("head user data", head), ("worker user data (launch template)", worker),
                ("SSM parameters (the auth token's value is generated at deploy)", params),
                ("Serve config (the SSM parameter's value, applied in place by the head's sync timer)", serve_config),
                *cloud_documents(rendered, omit=frozenset({"userData", "userDataBase64", "value"}))]

    def status(self, cfg, serve_config: dict, state: Optional[Path]) -> StatusReport:
        how = "through Session Manager to the head (its instance id is in `pulumi stack output dashboard`)"
        command = ("aws ssm start-session --target <head instance id> --document-name AWS-StartInteractiveCommand "
                   "--parameters command='docker exec ray-head serve status'")
        return StatusReport(0, [f"vm: {how}:", f"  {command}"],
                            {"platform": self.name, "live": None, "how": how, "commands": [command]})


SPEC = VmSpec()
