"""`python -m rayserve_pulumi.config.serve_check [--app-dir DIR] FILE|-`: the program's Serve-config validation,
for a config that is about to be applied (the VM head's sync runs it inside the head container before every
deploy). The apps' code is DIR, else $RAYSERVE_APP_DIR (the image sets it for a team's own code), else the
bundled apps; this process is the child interpreter the program would start (config.code_check).

Prints one line per error and exits 1; prints nothing and exits 0 when the config may be applied.
"""
from __future__ import annotations

import argparse
import os
import sys

from rayserve_pulumi.config.checks import serve_port_errors
from rayserve_pulumi.config.code_check import APP_DIR_ENV, check
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.yamlio import parse_yaml
from rayserve_pulumi.constants import INTERNAL_PORTS

__all__ = ["WHERE", "applied_config_errors", "main"]

WHERE = "serve config"


def applied_config_errors(config, app_dir: str | None = None) -> list[str]:
    """Every error `build_serve_config` would report for this already-built config, plus the port rules."""
    answer = check(config, app_dir)
    return answer["errors"] or serve_port_errors(answer["config"], INTERNAL_PORTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rayserve_pulumi.config.serve_check", description=__doc__)
    parser.add_argument("--app-dir", default=os.environ.get(APP_DIR_ENV) or None,
                        help="the apps' code folder (default $RAYSERVE_APP_DIR, else the bundled apps)")
    parser.add_argument("file", help="a Serve config (YAML or JSON), or - for standard input")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file).read()
        config = parse_yaml(text, WHERE)  # JSON is YAML
    except ConfigError as exc:
        errors = list(exc.lines)
    except OSError as exc:
        errors = [f"{WHERE}: cannot read {args.file}: {exc.strerror}"]
    else:
        errors = applied_config_errors(config, args.app_dir)
    for line in errors:
        print(line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
