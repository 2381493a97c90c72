"""LocalPlatformArgs: the `local` component's documented inputs, and the one function that turns a stack
into the provider's inputs (`from_stack(...).inputs()`). The program (`pulumi up`) and the no-CLI fallback
(`rayserve up`, local.cli) both use it, so both apply exactly the same thing; it imports no Pulumi.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.serve import app_code
from rayserve_pulumi.config.stack import LocalSettings, MetricsSettings, ServeSettings, StackConfig
from rayserve_pulumi.local.lifecycle import provider_inputs
from rayserve_pulumi.rollout.settings import RolloutSettings

__all__ = ["RUN_DIR", "LocalPlatformArgs"]

RUN_DIR = ".pulumi-state/local"  # under the program's directory (ignored by git): PID files of what `up` started


@dataclass(frozen=True)
class LocalPlatformArgs:
    """Inputs of `LocalPlatform` (and of `LocalServe` through `inputs()`)."""

    settings: LocalSettings = arg("the local head: host, ports, CPUs, auth mode")
    serve_config: dict = arg("validated Serve config (rayserve_pulumi.config.build_serve_config)")
    run_dir: str = arg("absolute folder for the head's PID file (what destroy stops)")
    serve_env: dict[str, str] = arg("Serve's ingress and tuning as Ray environment (ServeSettings.runtime_env)",
                                    default_factory=lambda: ServeSettings().runtime_env())
    models_dir: Optional[str] = arg("absolute folder of model directories the text app loads by name", None)
    metrics: MetricsSettings = arg("a local Prometheus scraping every Ray node", default_factory=MetricsSettings)
    code: AppCode = arg("the apps' code (AppCode.locate(app_dir, requirements, program_dir)); default the bundled "
                        "apps", default_factory=AppCode.bundled_apps)
    rollout: RolloutSettings = arg("how new code takes traffic: steps and the gate's thresholds",
                                   default_factory=RolloutSettings)

    @classmethod
    def from_stack(cls, cfg: StackConfig, serve_config: dict, program_dir: Optional[Path] = None) -> "LocalPlatformArgs":
        root = Path(program_dir or Path.cwd()).resolve()
        return cls(settings=cfg.local, serve_config=serve_config, serve_env=cfg.serve.runtime_env(),
                   run_dir=str(root / RUN_DIR / cfg.name), models_dir=str(root / cfg.local.models_dir),
                   metrics=cfg.metrics, code=app_code(cfg.serve, root), rollout=cfg.rollout)

    def inputs(self) -> dict:
        """The dynamic provider's input properties."""
        return provider_inputs(self.settings, self.serve_config, self.run_dir, self.serve_env, self.models_dir,
                               self.metrics, self.code, self.rollout.inputs())
