"""The platform registry: stack `rayserve:platform` name -> the platform's description (`PlatformSpec`).

Adding a platform is one folder (its description in `spec.py`, its `Platform` component, its settings) and
one line here. Entries are import strings so a stack imports only its own platform's code, and a
description imports no provider SDK: the shared code asks it (`platform(name)`), never compares names.
"""
from __future__ import annotations

import importlib

__all__ = ["PLATFORMS", "platform", "platform_class", "direct_lifecycle", "provider_components", "sections"]

PLATFORMS: dict[str, str] = {
    "local": "rayserve_pulumi.local.spec:SPEC",
    "eks": "rayserve_pulumi.aws.eks.spec:SPEC",
    "vm": "rayserve_pulumi.aws.vm.spec:SPEC",
    "kubernetes": "rayserve_pulumi.kubernetes.spec:SPEC",
}


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def platform(name: str):
    """The description registered under `name` (KeyError names the registered ones)."""
    if name not in PLATFORMS:
        raise KeyError(f"no platform {name!r}; registered: {sorted(PLATFORMS)}")
    return _load(PLATFORMS[name])


def platform_class(name: str):
    """The Platform subclass (the ComponentResource) of the platform registered under `name`."""
    return _load(platform(name).component)


def direct_lifecycle(name: str):
    """The `run` of a platform `rayserve up` deploys without a Pulumi CLI, or None."""
    spec = platform(name) if name in PLATFORMS else None
    return _load(spec.direct) if spec is not None and spec.direct else None


def provider_components() -> list[type]:
    """The components the component provider serves to other languages: each platform's that has one."""
    return [_load(platform(name).provider_component) for name in PLATFORMS if platform(name).provider_component]


def sections() -> dict[str, tuple]:
    """Every registered platform's own stack sections (a section two platforms read, such as `ray_service`,
    is one model); what `config.stack.StackConfig` adds to the shared settings."""
    found: dict[str, tuple] = {}
    for name in PLATFORMS:
        for key, (model, field) in platform(name).sections.items():
            if key in found and found[key][0] is not model:
                raise TypeError(f"stack section {key!r} is {found[key][0]} for one platform and {model} for {name}")
            found.setdefault(key, (model, field))
    return found
