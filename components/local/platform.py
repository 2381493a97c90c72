"""LocalPlatform: the `local` stack's one component (a real Ray head on this machine)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi

from rayserve_pulumi.config.stack import StackConfig
from rayserve_pulumi.local.args import LocalPlatformArgs
from rayserve_pulumi.local.provider import LocalRayServe
from rayserve_pulumi.platform import Platform, with_inputs

__all__ = ["LocalPlatform"]


class LocalPlatform(Platform):
    """Ray Serve on this machine; `dashboard` is the dashboard's URL, `prometheus` Prometheus' (metrics on)."""

    TYPE = "rayserve:local:LocalPlatform"
    NAME = "local"

    def __init__(self, name: str, args: LocalPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, opts)
        self.serve = LocalRayServe(f"{name}-serve", args.inputs(), pulumi.ResourceOptions(parent=self))
        self.app_urls = self.serve.app_urls
        self.dashboard = self.serve.dashboard_url
        self.prometheus = self.serve.prometheus_url
        self.finish()

    def extra_outputs(self) -> dict:
        return {"prometheus": self.prometheus}

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir: Optional[Path] = None,
                   inputs: Optional[dict] = None):
        return cls(cfg.name, with_inputs(LocalPlatformArgs.from_stack(cfg, serve_config, program_dir), inputs), opts)
