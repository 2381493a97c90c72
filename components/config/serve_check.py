"""`python -m rayserve_pulumi.config.serve_check FILE|-`: the program's Serve-config validation, for a config
that is about to be applied (the VM head's sync runs it inside the head container before every deploy).

Prints one line per error and exits 1; prints nothing and exits 0 when the config may be applied.
"""
from __future__ import annotations

import sys

from rayserve_pulumi.config.checks import serve_port_errors
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.serve import bundled_code_errors, strict_errors, validate_schema
from rayserve_pulumi.config.yamlio import parse_yaml
from rayserve_pulumi.constants import INTERNAL_PORTS

WHERE = "serve config"


def applied_config_errors(config) -> list[str]:
    """Every error `build_serve_config` would report for this already-built config, plus the port rules."""
    if not isinstance(config, dict):
        return [f"{WHERE}: must be a mapping with `applications:`, not {type(config).__name__}"]
    errors = strict_errors(config)
    if errors:
        return errors
    errors = bundled_code_errors(config)
    if errors:
        return errors
    try:
        validate_schema(config)
    except ConfigError as exc:
        return list(exc.lines)
    return serve_port_errors(config, INTERNAL_PORTS)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rayserve_pulumi.config.serve_check FILE|-", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args[0] == "-" else open(args[0]).read()
        config = parse_yaml(text, WHERE)  # JSON is YAML
    except ConfigError as exc:
        errors = list(exc.lines)
    except OSError as exc:
        errors = [f"{WHERE}: cannot read {args[0]}: {exc.strerror}"]
    else:
        errors = applied_config_errors(config)
    for line in errors:
        print(line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
