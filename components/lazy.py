"""Packages whose public names load on first use (PEP 562): importing a platform's description (`spec`)
or the no-CLI `up` then never pays for the provider SDKs its components import."""
from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["exports"]


def exports(package: str, homes: dict[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """(`__all__`, `__getattr__`) for `package`, whose names live in the modules `homes` names."""
    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return sorted(homes), __getattr__
