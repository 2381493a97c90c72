"""LocalPlatform: the `local` stack's one component (a real Ray head on this machine).

`LocalPlatformArgs.from_stack(...).inputs()` is the one function that turns a stack into the
provider's inputs: the program (`pulumi up`) and the no-CLI fallback (`rayserve_pulumi.local.cli`)
both use it, so both apply exactly the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import LocalSettings, MetricsSettings, ServeSettings, StackConfig
from rayserve_pulumi.local.provider import LocalRayServe, provider_inputs
from rayserve_pulumi.platform import Platform

RUN_DIR = ".pulumi-state/local"  # under the program's directory (ignored by git): PID files of what `up` started


@dataclass(frozen=True)
class LocalPlatformArgs:
    settings: LocalSettings = arg("the local head: host, ports, CPUs, auth mode")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    run_dir: str = arg("absolute folder for the head's PID file (what destroy stops)")
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=lambda: ServeSettings().runtime_env())
    models_dir: Optional[str] = arg("absolute folder of model directories the text app loads by name", None)
    metrics: MetricsSettings = arg("a local Prometheus scraping every Ray node", default_factory=MetricsSettings)

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, program_dir: Optional[Path] = None) -> "LocalPlatformArgs":
        root = Path(program_dir or Path.cwd()).resolve()
        return cls(settings=cfg.local, serve_config=serve_config, serve_env=cfg.serve.runtime_env(),
                   run_dir=str(root / RUN_DIR / cfg.name), models_dir=str(root / cfg.local.models_dir),
                   metrics=cfg.metrics)

    def inputs(self) -> dict:
        """The dynamic provider's input properties."""
        return provider_inputs(self.settings, self.serve_config, self.run_dir, self.serve_env, self.models_dir,
                               self.metrics)


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
    def from_stack(cls, cfg: StackConfig, serve_config: dict, opts=None, program_dir: Optional[Path] = None):
        return cls(cfg.name, LocalPlatformArgs.from_stack(cfg, serve_config, program_dir), opts)
