"""`rayserve COMMAND [STACK_FILE | --stack NAME]`: check a stack, print what it would apply, show how its
applications are doing, or deploy it, with no cloud credentials and no Pulumi CLI.

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

A stack is a file (`stacks/Pulumi.prod.yaml`) or, with `--stack NAME`, the named stack of the project: its
config as `pulumi config --json` resolves it (ESC environments and secrets included) when a Pulumi CLI is on
PATH, else the project's `Pulumi.NAME.yaml` (in its `stackConfigDir`). `rayserve COMMAND --help` says more.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from rayserve_pulumi import __version__
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.registry import direct_lifecycle, platform

__all__ = ["COMMANDS", "Stack", "program_dir_of", "state_file", "parser", "main", "lifecycle"]

# command -> (one line for the command list, what its --help says)
COMMANDS = {
    "validate": ("check a stack before anything is declared",
                 "Validate the stack config and its Serve config against the apps' code. Exit 0 and a one-line "
                 "summary, or exit 1 and one line per error naming its key; --json prints either as an object."),
    "render": ("print what the stack would apply, like `helm template`",
               "The Kubernetes manifests and Helm values (eks, kubernetes), the user data, SSM parameters and Serve "
               "config (vm), or the head settings and Serve config (local), computed under Pulumi's mocks."),
    "status": ("show how the stack's applications are doing",
               "local: the live config, every application and deployment with its status and replicas (exit 1 "
               "unless every application is RUNNING); eks, kubernetes, vm: the commands that show the same on "
               "the cluster. --json prints the same as an object."),
    "up": ("deploy a platform that needs no Pulumi engine (local)",
           "Validate, diff against the state file, then nothing, an update in place or a replacement; a deploy "
           "that fails puts the previous config back and exits 1. Outputs as JSON on stdout."),
    "refresh": ("read what is live into the state (local)", "Read what is live: a Ray that is gone leaves the "
                "state; applications that drifted are redeployed by the next up."),
    "destroy": ("stop what up started (local)", "Stop the Ray head and everything up started, from its PID files."),
}
LIFECYCLE = ("up", "refresh", "destroy")


@dataclass(frozen=True)
class Stack:
    """Which stack a command works on: its label in messages, its name (the state file's) and its project."""

    label: str
    name: str
    program_dir: Path
    file: Optional[Path]  # None: the values come from the Pulumi CLI

    def region(self) -> Optional[str]:
        """The stack file's `aws:region` (what `render` renders in), if it has one."""
        from rayserve_pulumi.config.yamlio import load_yaml_file

        if self.file is None or not self.file.is_file():
            return None
        config = (load_yaml_file(self.file, str(self.file)) or {}).get("config") or {}
        region = config.get("aws:region") if isinstance(config, dict) else None
        return region if isinstance(region, str) else None

    def values(self) -> dict[str, Any]:
        from rayserve_pulumi.config.sources import pulumi_cli_values, read_stack_file

        return read_stack_file(self.file) if self.file is not None else pulumi_cli_values(self.name, self.program_dir)


def program_dir_of(start: Path) -> Path:
    """The Pulumi project holding `start` (the nearest folder with a Pulumi.yaml), else its folder."""
    start = start.resolve()
    for folder in [start if start.is_dir() else start.parent, *start.parents]:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return start if start.is_dir() else start.parent


def state_file(stack: str, program_dir: Path) -> Path:
    """Where `rayserve up` keeps a stack's state: `.pulumi-state/<stack>-direct.json` in the project."""
    return program_dir / ".pulumi-state" / f"{stack}-direct.json"


def _stack(args: argparse.Namespace) -> Stack:
    from rayserve_pulumi.config.sources import stack_file_of

    if (args.stack_file is None) == (args.stack is None):
        raise ConfigError("name the stack: a STACK_FILE or --stack NAME (one of the two)")
    if args.stack_file is not None:
        program_dir = (args.program_dir or program_dir_of(args.stack_file)).resolve()
        name = args.stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
        return Stack(str(args.stack_file), name, program_dir, args.stack_file)
    program_dir = (args.program_dir or program_dir_of(Path.cwd())).resolve()
    if args.command not in LIFECYCLE and shutil.which("pulumi"):
        return Stack(f"stack {args.stack}", args.stack, program_dir, None)
    file = stack_file_of(args.stack, program_dir)
    return Stack(str(file), args.stack.rsplit("/", 1)[-1], program_dir, file)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rayserve", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"rayserve {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, detail) in COMMANDS.items():
        cmd = commands.add_parser(name, help=summary, description=detail)
        cmd.add_argument("stack_file", nargs="?", type=Path, metavar="STACK_FILE",
                         help="a stack file, e.g. stacks/Pulumi.prod.yaml")
        cmd.add_argument("--stack", metavar="NAME", help="the project's stack NAME instead of a file: "
                         + ("its Pulumi.NAME.yaml" if name in LIFECYCLE else
                            "`pulumi config --json` when a Pulumi CLI is on PATH (ESC included), else its "
                            "Pulumi.NAME.yaml"))
        cmd.add_argument("--program-dir", type=Path, help="the Pulumi project: anchors relative paths of the stack "
                         "(default: the nearest folder holding Pulumi.yaml)")
        if name in (*LIFECYCLE, "status"):
            cmd.add_argument("--state", type=Path, help="the state file (default: "
                             "<program dir>/.pulumi-state/<stack>-direct.json)")
        if name in ("validate", "status"):
            cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        if name == "render":
            cmd.add_argument("--since", type=Path, metavar="OLD_STACK_FILE", help="first print the rollout plan from "
                             "that stack file (e.g. the last applied one) to this one: for each change, in place, a "
                             "replica roll, a new head or cluster, or an incremental upgrade, and the peak extra "
                             "replicas or pods it needs")
    return top


def _fail(stack_label: str, lines: list[str], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"stack": stack_label, "valid": False, "errors": lines}))
    for line in lines:
        print(f"{stack_label}: {line}", file=sys.stderr)
    return 1


def main(argv: Optional[list[str]] = None) -> int:
    args = parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        stack = _stack(args)
    except ConfigError as exc:
        return _fail("rayserve", exc.lines, as_json)
    state = getattr(args, "state", None) or state_file(stack.name, stack.program_dir)
    if args.command in LIFECYCLE:
        return lifecycle(args.command, stack.file, state, stack.program_dir)
    from rayserve_pulumi.config.validate import validate_stack

    try:
        values = stack.values()
        cfg, serve_config = validate_stack(values, stack.program_dir)
    except ConfigError as exc:
        return _fail(stack.label, exc.lines, as_json)
    apps = [a["name"] for a in serve_config["applications"]]
    if args.command == "validate":
        if as_json:
            print(json.dumps({"stack": stack.label, "valid": True, "platform": cfg.platform, "name": cfg.name,
                              "applications": apps}))
        else:
            print(f"{stack.label}: valid {cfg.platform} stack {cfg.name!r}: {len(apps)} application(s) "
                  f"({', '.join(apps)})")
        return 0
    spec = platform(cfg.platform)
    if args.command == "status":
        report = spec.status(cfg, serve_config, state)
        print(json.dumps({"stack": stack.label, **report.data}) if as_json else "\n".join(report.lines))
        return report.code
    from rayserve_pulumi.preview import stack_region

    plan_docs = []
    if args.since is not None:
        try:
            plan_docs = [_rollout_plan(args.since, stack, spec, cfg, serve_config)]
        except ConfigError as exc:
            return _fail(str(args.since), exc.lines, False)
    with stack_region(stack.region()):
        print(_dump(plan_docs + spec.render_documents(values, cfg, serve_config, stack.program_dir)))
    return 0


def _rollout_plan(since: Path, stack: Stack, spec, cfg, serve_config: dict) -> tuple[str, dict]:
    """`render --since`: the rollout plan from the stack file `since` to this stack (one platform)."""
    from rayserve_pulumi.config.serve import app_code
    from rayserve_pulumi.config.sources import read_stack_file
    from rayserve_pulumi.config.validate import validate_stack
    from rayserve_pulumi.platform_spec import Planned
    from rayserve_pulumi.rollout.plan import describe, plan

    old_cfg, old_serve = validate_stack(read_stack_file(since), stack.program_dir)
    if platform(old_cfg.platform) is not spec:  # one description plans both sides
        raise ConfigError(f"--since: a {old_cfg.platform} stack; a rollout plan compares two stacks of one platform "
                          f"({cfg.platform})")

    def planned(c, s) -> Planned:
        return Planned(c, s, app_code(c.serve, stack.program_dir).digest(), stack.program_dir)

    changes = plan(spec, planned(old_cfg, old_serve), planned(cfg, serve_config))
    return f"rollout plan from {since} to {stack.label}", describe(changes, cfg.platform)


def _dump(docs: list[tuple[str, object]]) -> str:
    out = []
    for comment, doc in docs:
        body = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        out.append(f"# {comment}\n{body}")
    return "---\n".join(out)


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
