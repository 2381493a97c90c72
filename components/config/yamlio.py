"""Reading YAML a user wrote, safely: duplicate keys refused, size and alias expansion bounded, and
unreadable paths (missing, a directory, not UTF-8) reported as one ConfigError line naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rayserve_pulumi.config.errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_NODES", "parse_yaml", "read_text", "load_yaml_file"]

MAX_BYTES = 1 << 20  # 1 MiB: far beyond any real stack or Serve config
MAX_NODES = 100_000  # YAML nodes after alias expansion (an alias bomb expands to billions)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds once every alias is expanded (memoised: linear in the composed graph)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a cycle counts as unbounded
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; `where` names the key or file in any error."""
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES} bytes; a config this size is not accepted")
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, {}) > MAX_NODES:
                raise ConfigError(f"{where}: expands to more than {MAX_NODES} YAML nodes through aliases; "
                                  "write the values out instead")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None


def read_text(path: Path, where: str) -> str:
    """A UTF-8 text file's contents, or one ConfigError line saying why it cannot be read."""
    try:
        if path.is_dir():
            raise ConfigError(f"{where}: {path} is a directory; give a YAML file")
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{where}: {path} is larger than {MAX_BYTES} bytes")
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{where}: {path} cannot be read: {exc.strerror}") from None


def load_yaml_file(path: Path, where: str) -> Any:
    """Read and parse a YAML file (see parse_yaml and read_text)."""
    return parse_yaml(read_text(Path(path), where), where)
