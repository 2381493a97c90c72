"""The stack program: validate everything first, then declare the platform the registry names."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi

from rayserve_pulumi.config.serve import build_serve_config
from rayserve_pulumi.config.sources import load_stack_config
from rayserve_pulumi.config.stack import StackConfig
from rayserve_pulumi.registry import platform_class


def build(cfg: Optional[StackConfig] = None, program_dir: Optional[Path] = None) -> dict:
    """Declare the stack's platform; returns the exported outputs (also `pulumi.export`ed).

    `program_dir` anchors a relative `rayserve:serve.config_path`."""
    cfg = cfg or load_stack_config()
    serve_config = build_serve_config(cfg.serve, base_dir=program_dir)  # raises ConfigError before any resource
    outputs = platform_class(cfg.platform).from_stack(cfg, serve_config).outputs()
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
