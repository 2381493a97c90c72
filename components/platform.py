"""What every platform is: one ComponentResource with the same outputs, built from a validated stack.

A platform subclass sets `TYPE` (`rayserve:<module>:<Name>`), takes its own typed args in `__init__`
(so it can be used alone from another program) and implements `from_stack`, which the program calls
through the registry. `outputs()` is what the stack exports.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Optional

import pulumi

from rayserve_pulumi.config.stack import StackConfig

__all__ = ["Platform", "with_inputs"]


def with_inputs(args, inputs: Optional[dict]):
    """A platform's args dataclass with the given fields replaced (None values left as they are)."""
    given = {k: v for k, v in (inputs or {}).items() if v is not None}
    return dataclasses.replace(args, **given) if given else args


class Platform(pulumi.ComponentResource):
    """Outputs every platform gives: `app_urls` (application -> URL with its route prefix) and
    `dashboard` (the Ray dashboard's URL, or the command that makes it reachable)."""

    TYPE: ClassVar[str]
    NAME: ClassVar[str]
    app_urls: pulumi.Output[dict]
    dashboard: pulumi.Output[str]

    def __init__(self, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(self.TYPE, name, None, opts)

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts: Optional[pulumi.ResourceOptions] = None,
                   program_dir: Optional[Path] = None, inputs: Optional[dict] = None) -> "Platform":
        """Build this platform from a validated stack config and Serve config (`program_dir`: the Pulumi
        program's folder, which anchors relative paths of the stack; `inputs`: args fields whose values come
        from elsewhere, `pulumi.Input`s, e.g. the component provider's)."""
        raise NotImplementedError

    def extra_outputs(self) -> dict:
        """Platform-specific outputs (image, kubeconfig, ...)."""
        return {}

    def outputs(self) -> dict:
        return {"platform": self.NAME, "app_urls": self.app_urls, "dashboard": self.dashboard, **self.extra_outputs()}

    def finish(self) -> None:
        """Register the outputs once the subclass has set them."""
        self.register_outputs({k: v for k, v in self.outputs().items() if k != "platform"})
