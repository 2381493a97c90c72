"""Stack values as `pulumi config set` writes them.

Pulumi stores every top-level value, and every float even under `--path`, as a string ("1.5", "4"), and a
top-level boolean as "true"/"false". A field typed as a number therefore takes a number or a string that is a
decimal number; a boolean field takes a boolean or "true"/"false". Nothing else is converted: words, booleans
for numbers, numbers for booleans and non-finite values ("inf", "nan", "1e999") stay refused by the strict
models, and a field that also accepts a string keeps the string as written.
"""
from __future__ import annotations

import math
import re
import types
import typing
from typing import Any

from pydantic import BaseModel

__all__ = ["as_written_by_pulumi", "convert_fields"]

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_BOOLEANS = {"true": True, "false": False}


def _plain(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    annotation = _plain(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_plain(a) for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _scalar(kind: type, value: str) -> Any:
    """`value` as `kind` when Pulumi would have written that kind as this string, else `value` unchanged."""
    if kind is bool:
        return _BOOLEANS.get(value, value)
    if kind is int and _INTEGER.fullmatch(value):
        return int(value)
    if kind is float and _DECIMAL.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else value
    return value


def as_written_by_pulumi(annotation: Any, value: Any) -> Any:
    """`value` for a field of type `annotation`, with the strings Pulumi writes for numbers and booleans read
    back as what they stand for (containers element by element; submodels convert their own fields)."""
    members = _members(annotation)
    if isinstance(value, str):
        if str in members or any(value in typing.get_args(m) for m in members
                                 if typing.get_origin(m) is typing.Literal):
            return value
        for kind in (bool, int, float):
            if kind in members:
                converted = _scalar(kind, value)
                if converted is not value:
                    return converted
        return value
    if len(members) != 1:
        return value
    origin, args = typing.get_origin(members[0]), typing.get_args(members[0])
    if origin is list and isinstance(value, list) and args:
        return [as_written_by_pulumi(args[0], v) for v in value]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: as_written_by_pulumi(args[1], v) for k, v in value.items()}
    return value


def convert_fields(model: type[BaseModel], data: Any) -> Any:
    """A model's raw input with each field's value read as Pulumi wrote it (a before-validator's body)."""
    if not isinstance(data, dict):
        return data
    fields = model.model_fields
    return {key: as_written_by_pulumi(fields[key].annotation, value) if key in fields else value
            for key, value in data.items()}
