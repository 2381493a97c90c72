"""The one error type raised for bad stack or Serve config (before any resource is declared)."""
from __future__ import annotations


class ConfigError(ValueError):
    """Invalid stack or Serve config; the message names every offending key."""


_TYPE_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "is-instance"}


def _is_type_tag(part) -> bool:
    """pydantic adds union member names ("int", "literal['auto']") to error locations."""
    return isinstance(part, str) and (
        part in _TYPE_TAGS or "[" in part or part.startswith(("constrained-", "function-"))
    )


def format_pydantic_errors(prefix: str, exc) -> str:
    """Render a pydantic ValidationError as `<prefix>a.b: message` lines."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if not _is_type_tag(p))
        where = f"{prefix}{loc}" if loc else prefix.rstrip(":. ")
        lines.append(f"{where}: {err.get('msg')}")
    return "\n".join(dict.fromkeys(lines))
