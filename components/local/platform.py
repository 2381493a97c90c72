"""LocalPlatform: the `local` stack's one component (a real Ray head on this machine).

`LocalPlatformArgs.from_stack(...).inputs()` is the one function that turns a stack into the
provider's inputs: the program (`pulumi up`) and the no-CLI fallback (`rayserve_pulumi.local.cli`)
both use it, so both apply exactly the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import pulumi

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import LocalSettings, StackConfig
from rayserve_pulumi.local.provider import LocalRayServe, provider_inputs
from rayserve_pulumi.platform import Platform


@dataclass(frozen=True)
class LocalPlatformArgs:
    settings: LocalSettings = arg("the local head: host, ports, CPUs, auth mode")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    proxy: Literal["default", "haproxy"] = arg("Serve's ingress proxy", "default")
    models_dir: Optional[str] = arg("absolute folder of model directories the text app loads by name", None)

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, program_dir: Optional[Path] = None) -> "LocalPlatformArgs":
        models = str(Path(program_dir or Path.cwd()).resolve() / cfg.local.models_dir)
        return cls(settings=cfg.local, serve_config=serve_config, proxy=cfg.serve.proxy, models_dir=models)

    def inputs(self) -> dict:
        """The dynamic provider's input properties."""
        return provider_inputs(self.settings, self.serve_config, self.proxy, self.models_dir)


class LocalPlatform(Platform):
    """Ray Serve on this machine; `dashboard` is the dashboard's URL."""

    TYPE = "rayserve:local:LocalPlatform"
    NAME = "local"

    def __init__(self, name: str, args: LocalPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, opts)
        self.serve = LocalRayServe(f"{name}-serve", args.inputs(), pulumi.ResourceOptions(parent=self))
        self.app_urls = self.serve.app_urls
        self.dashboard = self.serve.dashboard_url
        self.finish()

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir: Optional[Path] = None):
        return cls(cfg.name, LocalPlatformArgs.from_stack(cfg, serve_config, program_dir), opts)
