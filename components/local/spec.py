"""The `local` platform's description: its ports, its one node, its checks, what render and status show,
and the lifecycle `rayserve up` runs without a Pulumi CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field

from rayserve_pulumi.local.settings import LocalSettings
from rayserve_pulumi.platform_spec import Node, PlatformSpec, StatusReport

__all__ = ["PORT_NAMES", "LocalSpec", "SPEC"]

PORT_NAMES = {"gcs_port": "GCS", "dashboard_port": "dashboard", "dashboard_metrics_port": "dashboard metrics",
              "haproxy_stats_port": "HAProxy stats",
              "haproxy_metrics_port": "HAProxy metrics", "fallback_proxy_port": "Serve fallback proxy",
              "fallback_proxy_grpc_port": "Serve fallback proxy gRPC", "metrics_export_port": "metrics",
              "dashboard_agent_listen_port": "dashboard agent", "dashboard_agent_grpc_port": "dashboard agent gRPC",
              "runtime_env_agent_port": "runtime-env agent", "ray_client_port": "Ray client"}


class LocalSpec(PlatformSpec):
    name = "local"
    component = "rayserve_pulumi.local:LocalPlatform"
    direct = "rayserve_pulumi.local.cli:run"
    sections = {"local": (LocalSettings, Field(LocalSettings(), description="platform local: the Ray head here"))}
    gated_rollouts = True

    def reserved_ports(self, cfg) -> dict[int, str]:
        return {port: PORT_NAMES[key] for key, port in cfg.local.listening_ports().items()}

    def nodes(self, cfg) -> list[Node]:
        return [("rayserve:local", float(cfg.local.num_cpus), float(cfg.local.num_gpus))]

    def stack_errors(self, cfg, serve_config: dict, apps: dict, code) -> list[str]:
        """The head's listeners outside the port ranges Ray binds from; the apps' requirements installed here."""
        from rayserve_pulumi.config.checks import range_error, ray_port_ranges, requirement_errors

        listeners = [(f"rayserve:local.{key}", port) for key, port in cfg.local.listening_ports().items()]
        if cfg.metrics.enabled:
            listeners.append(("rayserve:metrics.prometheus_port", cfg.metrics.prometheus_port))
        ranges = ray_port_ranges(cfg.serve.direct_ingress)
        return [e for where, port in listeners if (e := range_error(where, port, ranges))] + requirement_errors(code)

    def rollout_changes(self, old, new) -> tuple[list, bool]:
        """A changed head input (lifecycle.RESTART_KEYS) restarts the head; the code reaches the replicas as a
        new runtime_env version."""
        from rayserve_pulumi.local.args import LocalPlatformArgs
        from rayserve_pulumi.local.lifecycle import planned_changes

        return planned_changes(*(LocalPlatformArgs.from_stack(p.cfg, p.serve_config, p.program_dir).inputs()
                                 for p in (old, new)))

    def render_documents(self, values: dict, cfg, serve_config: dict, program_dir: Path) -> list[tuple[str, object]]:
        from rayserve_pulumi.local.args import LocalPlatformArgs

        props = LocalPlatformArgs.from_stack(cfg, serve_config, program_dir).inputs()
        return [("local Ray head", {k: v for k, v in props.items() if k != "serve_config_json"}),
                ("Serve config", serve_config)]

    def status(self, cfg, serve_config: dict, state: Optional[Path]) -> StatusReport:
        """The live config (after a rolled-back deploy, the failure) and every application and deployment."""
        from rayserve_pulumi.local.cli import State
        from rayserve_pulumi.node_agent import ray_ops

        dash = f"http://{cfg.local.host}:{cfg.local.dashboard_port}"
        try:
            ray_ops.wait_dashboard(dash, timeout=2)
        except TimeoutError:
            why = f"no Ray head answers at {dash} (run `bash scripts/up.sh`)"
            return StatusReport(1, [f"local: {why}"], {"platform": self.name, "dashboard": dash, "running": False,
                                                       "error": why})
        apps = ray_ops.applications(dash)
        live = State(state).live() if state is not None and state.exists() else None
        wanted = [a["name"] for a in serve_config["applications"]]
        shown = {}
        for name in wanted + sorted(set(apps) - set(wanted)):
            app = apps.get(name) or {}
            shown[name] = {
                "status": app.get("status", "NOT DEPLOYED"),
                "message": ray_ops.failure_cause(app["message"]) if app.get("message") else None,
                "deployments": {dep_name: {"status": dep.get("status"), "running": ray_ops.running_replicas(dep),
                                           "target": dep.get("target_num_replicas"),
                                           "message": ray_ops.failure_cause(dep.get("message", "")) or None}
                                for dep_name, dep in sorted((app.get("deployments") or {}).items())}}
        lines = [f"local: dashboard {dash}"]
        if live:
            failed = live.get("rolled_back")
            lines.append(f"live config: {live['config_hash']}" + (
                f" (the last up rolled back config {failed['config_hash']}: {failed['cause']})" if failed else ""))
        for name, app in shown.items():
            lines.append(f"{name}: {app['status']}" + (f" — {app['message']}" if app["message"] else ""))
            for dep_name, dep in app["deployments"].items():
                lines.append(f"  {dep_name}: {dep['status']} {dep['running']}/"
                             f"{'?' if dep['target'] is None else dep['target']} replicas"
                             + (f" — {dep['message']}" if dep["message"] else ""))
        healthy = all(shown[name]["status"] == "RUNNING" for name in wanted)
        return StatusReport(0 if healthy else 1, lines, {
            "platform": self.name, "dashboard": dash, "running": True, "healthy": healthy,
            "live": {"config_hash": live["config_hash"], "rolled_back": live.get("rolled_back")} if live else None,
            "applications": shown})


SPEC = LocalSpec()
