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


def _k8s_manifest(res) -> dict:
    """A declared pulumi-kubernetes resource as the manifest it would apply."""
    group_version, kind = res.type.split(":", 1)[1].rsplit(":", 1)
    group, _, version = group_version.partition("/")
    api = version if group == "core" else f"{group}/{version}"
    body = {k: v for k, v in res.inputs.items() if k not in ("apiVersion", "kind", "__defaults")}
    return {"apiVersion": api, "kind": kind, **body}


def render_documents(values: dict, cfg, serve_config: dict, program_dir: Path) -> list[tuple[str, object]]:
    """(comment, document) pairs the stack would apply."""
    from rayserve_pulumi.preview import preview

    rendered = preview(values, "render", program_dir=program_dir, redact=True)
    docs: list[tuple[str, object]] = []
    if cfg.platform == "eks":
        for res in rendered.resources:
            if res.type == "kubernetes:helm.sh/v3:Release":
                i = res.inputs
                docs.append((f"Helm release {i['name']}: chart {i['chart']} {i['version']} from "
                             f"{i['repositoryOpts']['repo']} into {i['namespace']}; values:", i.get("values") or {}))
            elif res.type.startswith("kubernetes:") and not res.type.startswith("kubernetes:index:"):
                docs.append((f"{res.type} ({res.name})", _k8s_manifest(res)))
    elif cfg.platform == "vm":
        from rayserve_pulumi.aws.vm.user_data import decode

        head = decode(rendered.one("aws:ec2/instance:Instance").inputs["userDataBase64"])
        worker = decode(rendered.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["userData"])
        docs += [("head user data", head), ("worker user data (launch template)", worker)]
        params = {p.inputs["name"]: p.inputs["type"] for p in rendered.of_type("aws:ssm/parameter:Parameter")}
        docs.append(("SSM parameters (the auth token's value is generated at deploy)", params))
        docs.append(("Serve config (the SSM parameter's value, applied in place by the head's sync timer)", serve_config))
    else:
        from rayserve_pulumi.local.args import LocalPlatformArgs

        props = LocalPlatformArgs.from_stack(cfg, serve_config, program_dir).inputs()
        docs.append(("local Ray head", {k: v for k, v in props.items() if k != "serve_config_json"}))
        docs.append(("Serve config", serve_config))
    return docs


def state_file(stack_file: Path, program_dir: Path) -> Path:
    """Where `rayserve up` keeps a stack's state: `.pulumi-state/<stack>-direct.json` in the project."""
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml").removesuffix(".yml")
    return program_dir / ".pulumi-state" / f"{stack}-direct.json"


def live_line(state: Path) -> Optional[str]:
    """What `rayserve up`'s state says is live, after a failed deploy included."""
    from rayserve_pulumi.local.cli import State

    live = State(state).live() if state.exists() else None
    if not live:
        return None
    line = f"live config: {live['config_hash']}"
    failed = live.get("rolled_back")
    return line + (f" (the last up rolled back config {failed['config_hash']}: {failed['cause']})" if failed else "")


def status_lines(cfg, serve_config: dict, state: Optional[Path] = None) -> tuple[int, list[str]]:
    """(exit status, lines) of `rayserve status`."""
    if cfg.platform == "local":
        from rayserve_pulumi.node_agent import ray_ops

        dash = f"http://{cfg.local.host}:{cfg.local.dashboard_port}"
        try:
            ray_ops.wait_dashboard(dash, timeout=2)
        except TimeoutError:
            return 1, [f"local: no Ray head answers at {dash} (run `bash scripts/up.sh`)"]
        apps = ray_ops.applications(dash)
        lines = [f"local: dashboard {dash}", *filter(None, [live_line(state) if state else None])]
        for name in [a["name"] for a in serve_config["applications"]] + sorted(set(apps) - {
                a["name"] for a in serve_config["applications"]}):
            app = apps.get(name) or {}
            lines.append(f"{name}: {app.get('status', 'NOT DEPLOYED')}"
                         + (f" — {ray_ops.failure_cause(app['message'])}" if app.get("message") else ""))
            for dep_name, dep in sorted((app.get("deployments") or {}).items()):
                message = ray_ops.failure_cause(dep.get("message", ""))
                lines.append(f"  {dep_name}: {dep.get('status')} {ray_ops.running_replicas(dep)}/{dep.get('target_num_replicas', '?')} replicas"
                             + (f" — {message}" if message else ""))
        healthy = all((apps.get(a["name"]) or {}).get("status") == "RUNNING" for a in serve_config["applications"])
        return (0 if healthy else 1), lines
    if cfg.platform == "eks":
        rs = cfg.ray_service
        head = f"$(kubectl -n {rs.namespace} get pods -l ray.io/node-type=head,rayserve.io/service={rs.name} -o name)"
        return 0, [
            "eks: with the stack's kubeconfig (pulumi stack output kubeconfig --show-secrets > kubeconfig.json; "
            "export KUBECONFIG=$PWD/kubeconfig.json):",
            f"  kubectl -n {rs.namespace} get rayservice {rs.name} -o jsonpath='{{.status.activeServiceStatus.applicationStatuses}}'",
            f"  kubectl -n {rs.namespace} describe rayservice {rs.name}   # conditions and events",
            f"  kubectl -n {rs.namespace} exec {head} -- serve status   # KubeRay gives the pods the Ray token",
        ]
    return 0, [
        "vm: through Session Manager to the head (its instance id is in `pulumi stack output dashboard`):",
        "  aws ssm start-session --target <head instance id> --document-name AWS-StartInteractiveCommand "
        "--parameters command='docker exec ray-head serve status'",
    ]


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
    if args.command == "status":
        code, lines = status_lines(cfg, serve_config, state)
        print("\n".join(lines))
        return code
    print(_dump(render_documents(values, cfg, serve_config, program_dir)))
    return 0


def lifecycle(action: str, stack_file: Path, state: Path, program_dir: Path) -> int:
    """`rayserve up|refresh|destroy`: the platform's own lifecycle, without a Pulumi CLI (local), else one line."""
    from rayserve_pulumi.config.sources import read_stack_file
    from rayserve_pulumi.registry import direct_lifecycle

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
