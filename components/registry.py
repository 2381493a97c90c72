"""The platform registry: stack `rayserve:platform` name -> the ComponentResource that deploys it.

Adding a platform is one folder with a `Platform` subclass and one line here. Entries are import
strings so a stack imports only its own platform's provider SDKs. `DIRECT` names the platforms `rayserve
up` can deploy without a Pulumi CLI (their lifecycle's `run(action, stack_file, state_file, program_dir)`).
"""
from __future__ import annotations

import importlib

PLATFORMS: dict[str, str] = {
    "local": "rayserve_pulumi.local:LocalPlatform",
    "eks": "rayserve_pulumi.aws.eks:EksPlatform",
    "vm": "rayserve_pulumi.aws.vm:VmPlatform",
}


DIRECT: dict[str, str] = {
    "local": "rayserve_pulumi.local.cli:run",
}


def platform_class(name: str):
    """The Platform subclass registered under `name` (KeyError names the registered ones)."""
    try:
        module, _, attr = PLATFORMS[name].partition(":")
    except KeyError:
        raise KeyError(f"no platform {name!r}; registered: {sorted(PLATFORMS)}") from None
    return getattr(importlib.import_module(module), attr)


def direct_lifecycle(name: str):
    """The `run` of a platform `rayserve up` deploys without a Pulumi CLI, or None."""
    if name not in DIRECT:
        return None
    module, _, attr = DIRECT[name].partition(":")
    return getattr(importlib.import_module(module), attr)
