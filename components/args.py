"""Documented component args: every field of every `*Args` dataclass says what it is for."""
from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["arg", "describe"]

_MISSING: Any = dataclasses.MISSING


def arg(description: str, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    """A dataclass field with a description (read it back with `describe`)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"description": description})


def describe(args_class: type) -> dict[str, str]:
    """Field name -> description of an args dataclass."""
    return {f.name: f.metadata.get("description", "") for f in dataclasses.fields(args_class)}
