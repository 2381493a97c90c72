"""The stack program: validate everything first, then declare the platform the registry names."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi

from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.sources import raw_stack_values
from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.registry import platform_class

__all__ = ["StackConfigError", "build"]


class StackConfigError(ConfigError, pulumi.RunError):
    """A ConfigError that ends `pulumi up` with its lines and no Python traceback."""


def build(values: Optional[dict] = None, program_dir: Optional[Path] = None,
          validated: Optional[tuple] = None) -> dict:
    """Validate the stack (`values`: its raw `rayserve:` config, default the running stack's), then
    declare its platform; returns the exported outputs (also `pulumi.export`ed).

    `program_dir` anchors the stack's relative paths; `validated`: the (StackConfig, Serve config) a caller
    already validated these values into (`rayserve render`: one validation per run)."""
    if validated is not None:
        cfg, serve_config = validated
    else:
        try:
            cfg, serve_config = validate_stack(raw_stack_values() if values is None else values, program_dir)
        except ConfigError as exc:
            raise StackConfigError(*exc.lines) from None
    outputs = platform_class(cfg.platform).from_stack(cfg, serve_config, program_dir=program_dir).outputs()
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
