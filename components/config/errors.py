"""The one error type raised for bad stack or Serve config (before any resource is declared), and the
formatting that makes every error one line naming its key ("applications[fruit].deployments[MangoStand]",
by name, not by list index)."""
from __future__ import annotations

from typing import Any, Iterable, Optional

__all__ = ["ConfigError", "path_of", "format_pydantic_errors", "one_line"]


class ConfigError(ValueError):
    """Invalid stack or Serve config; each line of the message is one error naming its key."""

    def __init__(self, *lines: str):
        self.lines = [line for chunk in lines for line in str(chunk).splitlines() if line]
        super().__init__("\n".join(self.lines))


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line. Where the message spans lines (Ray's start-up errors begin with a newline and
    end with the log line that says why), its first and last non-blank lines, so neither the cause nor the
    context is dropped."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] + (f" … {lines[-1]}" if len(lines) > 1 else "") if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_TYPE_TAGS = {"int", "str", "float", "bool", "dict", "list", "none", "is-instance"}


def _is_type_tag(part) -> bool:
    """pydantic adds union member names ("int", "literal['auto']") to error locations."""
    return isinstance(part, str) and (
        part in _TYPE_TAGS or "[" in part or part.startswith(("constrained-", "function-"))
    )


def path_of(loc: Iterable, raw: Any = None) -> str:
    """`a.b[name].c` for a location; list items are named by their `name` key where they have one."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _message(err: dict) -> str:
    msg = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    if err.get("type", "").endswith(("_type", "_parsing", "finite_number", "literal_error", "extra_forbidden")) and \
            not isinstance(value, (dict, list)) and len(repr(value)) <= 60:
        msg += f" (got {value!r})" if err.get("type") != "extra_forbidden" else " (unknown key)"
    return msg


def format_pydantic_errors(prefix: str, exc, raw: Optional[Any] = None) -> list[str]:
    """One `<prefix><path>: message` line per location (union alternatives joined with 'or')."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if not _is_type_tag(p)]
        path = path_of(loc, raw)
        messages = by_path.setdefault(f"{prefix}{path}" if path else prefix.rstrip(":. "), [])
        if (m := _message(err)) not in messages:
            messages.append(m)
    lines = []
    for where, msgs in by_path.items():
        first, *rest = msgs
        if first.startswith("Input should be "):
            rest = [m.removeprefix("Input should be ") for m in rest]
        got = next((m[m.rindex(" (got "):] for m in msgs if " (got " in m), "")
        joined = " or ".join(m.removesuffix(got) if got else m for m in [first, *rest])
        lines.append(f"{where}: {joined}{got}")
    return lines
