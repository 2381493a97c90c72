"""What a platform is to the shared code: its description (`PlatformSpec`), without its provider SDKs.

The registry maps a `rayserve:platform` name to a description; validation, `rayserve render`, `rayserve
status` and `rayserve up` ask the description and never compare platform names. A platform's folder holds
its description (`spec.py`), its component (`Platform` subclass) and its settings. Importing a description
imports no Pulumi: the no-CLI `up` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from rayserve_pulumi.constants import INTERNAL_PORTS

__all__ = ["Node", "StatusReport", "Planned", "PlatformSpec", "cloud_documents", "k8s_manifest"]

if TYPE_CHECKING:
    from rayserve_pulumi.config.app_code import AppCode
    from rayserve_pulumi.config.stack import StackConfig

Node = tuple[str, float, float]  # (the stack key that sizes it, Ray CPUs, Ray GPUs)


@dataclass(frozen=True)
class StatusReport:
    """`rayserve status`: its exit status, its lines, and the same as a JSON-able object (`--json`)."""

    code: int
    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Planned:
    """One side of a rollout plan: a validated stack, its Serve config and its apps' code."""

    cfg: "StackConfig"
    serve_config: dict
    code_digest: str
    program_dir: Path

    @property
    def image(self) -> str:
        """The image this side runs: its pinned uri, or what it builds (the tag carries the code's digest)."""
        return self.cfg.image.uri or f"{self.cfg.image.repository_name}:{self.cfg.image.tag}-{self.code_digest[:12]}"


class PlatformSpec:
    """A platform's description. Subclasses set `name` and `component` (`module:Class` of its Platform) and
    override what differs from these defaults."""

    name: ClassVar[str]
    component: ClassVar[str]
    # its own stack sections: key -> (settings model, pydantic Field with its default and description)
    sections: ClassVar[dict[str, tuple[Any, Any]]] = {}
    required_sections: ClassVar[tuple[str, ...]] = ()  # of those, the ones it cannot do without
    needs_image: ClassVar[bool] = False  # runs the Serve image (image.uri or image.build)
    declares_aws: ClassVar[bool] = False  # declares AWS resources (which `tags` tag)
    direct: ClassVar[Optional[str]] = None  # `module:run` of a lifecycle `rayserve up` runs without Pulumi
    # `module:Class` of its component for other languages (rayserve_pulumi.provider), if it has one
    provider_component: ClassVar[Optional[str]] = None
    gated_rollouts: ClassVar[bool] = False  # steps new code's traffic by `rollout` (else that section is refused)

    def section_errors(self, cfg: "StackConfig", supplied: frozenset = frozenset()) -> list[str]:
        """What the stack's sections lack for this platform (checked when the stack config is parsed);
        `supplied`: settings a component user passes as args instead ("image", "allowed_cidrs")."""
        errors = [f"platform {self.name} needs {'an' if s[0] in 'aeiou' else 'a'} `{s}` section"
                  for s in self.required_sections if getattr(cfg, s) is None]
        if self.needs_image and not cfg.image.provided and "image" not in supplied:
            errors.append(f"platform {self.name} needs image.uri (prebuilt, pinned) or image.build: true")
        if cfg.tags and not self.declares_aws:
            errors.append(f"tags are AWS resource tags; the {self.name} platform declares no AWS resource")
        if "rollout" in cfg.model_fields_set and not self.gated_rollouts:
            errors.append(f"rollout gates new code where a platform runs two versions side by side; the {self.name} "
                          "platform does not: drop the rollout section")
        return errors

    def reserved_ports(self, cfg: "StackConfig") -> dict[int, str]:
        """The ports Ray itself uses on this platform: no Serve port may take one."""
        return dict(INTERNAL_PORTS)

    def nodes(self, cfg: "StackConfig") -> list[Node]:
        """Each kind of node the stack's Ray cluster has, for the replicas' fit."""
        raise NotImplementedError

    def stack_errors(self, cfg: "StackConfig", serve_config: dict, apps: dict, code: "AppCode") -> list[str]:
        """This platform's own cross-checks of a validated stack (`apps`: the code check's facts)."""
        return []

    def value_errors(self, cfg: "StackConfig", serve_config: dict) -> list[str]:
        """Its cross-checks that read the Serve config's values, user_config included (config.verdict runs
        them again when only user_config values changed)."""
        return []

    def rollout_changes(self, old: "Planned", new: "Planned") -> tuple[list, bool]:
        """(the platform's own changes from `old` to `new` as rollout.plan Changes, whether the apps' code
        reaches the running replicas as a new version, so Serve rolls them). Default: none, and it does."""
        return [], old.code_digest != new.code_digest

    def render_documents(self, values: dict, cfg: "StackConfig", serve_config: dict,
                         program_dir: Path) -> list[tuple[str, object]]:
        """(comment, document) pairs `rayserve render` prints: what the stack would apply."""
        raise NotImplementedError

    def status(self, cfg: "StackConfig", serve_config: dict, state: Optional[Path]) -> StatusReport:
        """What `rayserve status` shows."""
        raise NotImplementedError


def cloud_documents(rendered, omit: frozenset = frozenset()) -> list[tuple[str, object]]:
    """Every declared resource that is neither a Kubernetes object nor one of the package's components (the
    VPC, the cluster, security groups, IAM, EFS, ECR, load balancers, ...): its type, name and inputs as
    declared, secrets redacted value by value, `omit` keys shown elsewhere."""
    return [(f"{res.type} ({res.name})", {k: v for k, v in res.inputs.items() if k not in omit and k != "__defaults"})
            for res in rendered.resources if res.type.split(":")[0] not in ("kubernetes", "rayserve", "pulumi")]


def k8s_manifest(res) -> dict:
    """A declared pulumi-kubernetes resource (under the preview's mocks) as the manifest it would apply."""
    group_version, kind = res.type.split(":", 1)[1].rsplit(":", 1)
    group, _, version = group_version.partition("/")
    api = version if group == "core" else f"{group}/{version}"
    body = {k: v for k, v in res.inputs.items() if k not in ("apiVersion", "kind", "__defaults")}
    return {"apiVersion": api, "kind": kind, **body}
