"""`rayserve validate|render|status|up|refresh|destroy STACK_FILE`: check a stack, print what it would apply,
show how its applications are doing, or deploy it, with no cloud credentials and no Pulumi CLI.

- validate: exit 0 and a one-line summary, or exit 1 and one line per error (no traceback).
- render: like `helm template`: the Kubernetes manifests (eks), the user data and Serve config (vm),
  or the Serve config and head settings (local), computed under Pulumi's mocks. Generated secrets
  show as references, values only the cloud can compute as placeholders.
- status: local: which config is live (and a rolled-back failure), every application and deployment with
  its status, running replicas and latest message, read from the dashboard with the stack's Ray token
  (exit 1 when Ray is not running); eks and vm: the exact commands that show the same on the cluster.
- up / refresh / destroy: the engine's lifecycle for a platform that runs without one (local): validate,
  diff against the state in `.pulumi-state/` beside the project's Pulumi.yaml, then nothing, an update in
  place or a replacement, with progress lines on stderr and the outputs as JSON; a deploy that fails puts
  the previous config back. With a Pulumi CLI, `pulumi up` does the same through the same provider.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import yaml

from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.registry import direct_lifecycle, platform

__all__ = ["program_dir_of", "validate", "state_file", "main", "lifecycle"]


def program_dir_of(stack_file: Path) -> Path:
    """The Pulumi project holding the stack file (the nearest folder with a Pulumi.yaml), else its folder."""
    for folder in [stack_file.resolve().parent, *stack_file.resolve().parents]:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return stack_file.resolve().parent


def validate(stack_file: Path, program_dir: Optional[Path]):
    from rayserve_pulumi.config.sources import read_stack_file
    from rayserve_pulumi.config.validate import validate_stack

    values = read_stack_file(stack_file)
    return values, *validate_stack(values, program_dir or program_dir_of(stack_file))


def state_file(stack_file: Path, program_dir: Path) -> Path:
    """Where `rayserve up` keeps a stack's state: `.pulumi-state/<stack>-direct.json` in the project."""
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
    return program_dir / ".pulumi-state" / f"{stack}-direct.json"


def _dump(docs: list[tuple[str, object]]) -> str:
    out = []
    for comment, doc in docs:
        body = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        out.append(f"# {comment}\n{body}")
    return "---\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="rayserve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["validate", "render", "status", "up", "refresh", "destroy"])
    parser.add_argument("stack_file", type=Path, help="a stack file, e.g. stacks/Pulumi.prod.yaml")
    parser.add_argument("--program-dir", type=Path, help="the Pulumi project: anchors relative paths of the stack "
                                                         "(default: the nearest folder holding Pulumi.yaml)")
    parser.add_argument("--state", type=Path, help="up/refresh/destroy/status: the state file (default: "
                                                   "<program dir>/.pulumi-state/<stack>-direct.json)")
    args = parser.parse_args(argv)
    program_dir = (args.program_dir or program_dir_of(args.stack_file)).resolve()
    state = args.state or state_file(args.stack_file, program_dir)
    if args.command in ("up", "refresh", "destroy"):
        return lifecycle(args.command, args.stack_file, state, program_dir)
    try:
        values, cfg, serve_config = validate(args.stack_file, program_dir)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"{args.stack_file}: {line}", file=sys.stderr)
        return 1
    if args.command == "validate":
        apps = [a["name"] for a in serve_config["applications"]]
        print(f"{args.stack_file}: valid {cfg.platform} stack {cfg.name!r}: {len(apps)} application(s) "
              f"({', '.join(apps)})")
        return 0
    spec = platform(cfg.platform)
    if args.command == "status":
        code, lines = spec.status(cfg, serve_config, state)
        print("\n".join(lines))
        return code
    print(_dump(spec.render_documents(values, cfg, serve_config, program_dir)))
    return 0


def lifecycle(action: str, stack_file: Path, state: Path, program_dir: Path) -> int:
    """`rayserve up|refresh|destroy`: the platform's own lifecycle, without a Pulumi CLI (local), else one line."""
    from rayserve_pulumi.config.sources import read_stack_file

    try:
        platform = read_stack_file(stack_file).get("platform", "local")
    except ConfigError as exc:
        print(f"{stack_file}: {exc.lines[0]}", file=sys.stderr)
        return 1
    run = direct_lifecycle(platform) if isinstance(platform, str) else None
    if run is None:
        print(f"{stack_file}: rayserve {action} runs platforms that need no Pulumi engine; the {platform!r} "
              f"platform's resources are deployed by `pulumi {action} --stack <stack>`", file=sys.stderr)
        return 1
    return run(action, stack_file, state, program_dir)


if __name__ == "__main__":
    sys.exit(main())
