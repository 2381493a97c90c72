"""Component args that may come from another resource or stack (`pulumi.Input`): checked once known.

A value read from a `StackReference` or another resource's output is unknown while a preview plans, so it
cannot be checked before anything is declared the way a stack value is; `checked` applies the same rule
(the same pydantic type the stack config uses) as soon as the value is known, and a bad value fails the
deployment with one line naming the argument, before the resources that take it are created.
"""
from __future__ import annotations

from typing import Any, Optional, TypeVar

import pulumi
from pydantic import TypeAdapter, ValidationError

from rayserve_pulumi.config.errors import format_pydantic_errors

__all__ = ["checked", "checked_or_none"]

T = TypeVar("T")


def checked(value: pulumi.Input[T], annotation: Any, key: str) -> pulumi.Output[T]:
    """`value` as an Output that, once known, is checked as `annotation` (strictly); a bad value raises one
    line naming `key` (the argument) and fails whatever takes the Output."""
    adapter = TypeAdapter(annotation)

    def check(known):
        try:
            return adapter.validate_python(known, strict=True)
        except ValidationError as exc:
            raise ValueError("; ".join(format_pydantic_errors(f"{key}", exc, known))) from None

    return pulumi.Output.from_input(value).apply(check)


def checked_or_none(value: Optional[pulumi.Input[T]], annotation: Any, key: str) -> Optional[pulumi.Output[T]]:
    return None if value is None else checked(value, annotation, key)
