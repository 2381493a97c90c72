"""The `local` platform's dynamic provider: a real Ray head on this machine running the bundled apps.

create = `ray start --head` + deploy through the Serve REST API + wait for RUNNING; update = redeploy
in place; delete = shut Serve down and `ray stop`; read = what is live (an empty id when Ray is gone,
a drift marker when the running applications are not the applied ones), so `pulumi refresh` notices.
Every step reports one line (through Pulumi's log under the engine, on stderr otherwise). Tests call
its methods directly against a real local Ray; `rayserve_pulumi.local.LocalPlatform` is the component.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from rayserve_pulumi.config.serve import app_urls, serve_port
from rayserve_pulumi.config.stack import LocalSettings
from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.serve_apps.seq2seq import MODELS_ENV

# Inputs whose change needs a new Ray head (everything else is a Serve redeploy in place).
RESTART_KEYS = ("host", "gcs_port", "dashboard_port", "num_cpus", "num_gpus", "auth_mode", "ray_env")
DRIFTED = "drifted"  # config_hash after a read that found other applications than the applied ones


def report(message: str) -> None:
    """One progress line: Pulumi's log when an engine is listening (`pulumi up`), else stderr."""
    from pulumi.runtime import settings

    if settings.get_engine() is not None:
        pulumi.log.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def dashboard_url(props: dict) -> str:
    return f"http://{props['host']}:{int(props['dashboard_port'])}"


def serve_base_url(props: dict, config: dict) -> str:
    return f"http://{props['host']}:{serve_port(config)}"


class LocalServeProvider(ResourceProvider):
    """CRUD for a local Ray head + Serve deployment (inputs: see provider_inputs)."""

    def _deploy(self, props: dict) -> dict:
        config = json.loads(props["serve_config_json"])
        dash = dashboard_url(props)
        ray_ops.wait_dashboard(dash)
        names = [a["name"] for a in config["applications"]]
        start = time.monotonic()
        report(f"serve: deploying {len(names)} application(s): {', '.join(names)}")
        ray_ops.deploy(dash, config)
        ray_ops.wait_running(dash, names, timeout=float(props.get("deploy_timeout_s", 300)),
                             on_progress=lambda line: report(f"serve: {line}"))
        report(f"serve: every application RUNNING after {time.monotonic() - start:.1f} s")
        return {
            **props,
            "dashboard_url": dash,
            "app_urls": app_urls(serve_base_url(props, config), config),
            "config_hash": ray_ops.config_hash(config),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        try:
            ray_ops.wait_dashboard(dashboard_url(props), timeout=1)
            adopted = True  # a head is already serving on these ports (e.g. a retried create)
            report(f"local: adopting the Ray head already at {dashboard_url(props)}")
        except TimeoutError:
            adopted = False
        if not adopted:
            start = time.monotonic()
            report(f"local: starting the Ray head ({props['host']}, {int(props['num_cpus'])} CPUs, "
                   f"auth {props.get('auth_mode', 'token')})")
            ray_ops.start_head(
                gcs_port=int(props["gcs_port"]),
                dashboard_port=int(props["dashboard_port"]),
                dashboard_host=props["host"],
                num_cpus=int(props["num_cpus"]),
                num_gpus=int(props.get("num_gpus", 0)),
                auth_mode=props.get("auth_mode", "token"),
                extra_env=props.get("ray_env") or {},
            )
            report(f"local: Ray head started in {time.monotonic() - start:.1f} s; dashboard {dashboard_url(props)}")
        try:
            outs = self._deploy(props)
        except Exception:
            if not adopted:
                ray_ops.stop()
            raise
        return CreateResult(id_=f"local-ray-{props['host']}-{int(props['gcs_port'])}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in RESTART_KEYS if olds.get(k) != news.get(k)]
        changed = replaces or olds.get("serve_config_json") != news.get("serve_config_json") or \
            olds.get("deploy_timeout_s") != news.get("deploy_timeout_s") or olds.get("config_hash") == DRIFTED
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._deploy(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """What is live: nothing (empty id) when the Ray head no longer answers; the applied state when the
        running applications are the applied ones, all RUNNING; else the same with a drift marker."""
        dash = dashboard_url(props)
        try:
            ray_ops.wait_dashboard(dash, timeout=2)
        except TimeoutError:
            report(f"local: the Ray head at {dash} is gone")
            return ReadResult(id_="", outs={})
        live = ray_ops.status(dash).get("applications") or {}
        applied = json.loads(props.get("serve_config_json") or '{"applications": []}')
        wanted = {a["name"] for a in applied["applications"]}
        statuses = {name: app.get("status") for name, app in live.items()}
        if set(statuses) != wanted or any(s != "RUNNING" for s in statuses.values()):
            report(f"local: Serve drifted from the applied config: live {statuses}, applied {sorted(wanted)}")
            return ReadResult(id_=id_, outs={**props, "config_hash": DRIFTED})
        return ReadResult(id_=id_, outs=props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        start = time.monotonic()
        try:
            ray_ops.delete_apps(dashboard_url(props))
        except OSError:
            pass  # Ray already gone: nothing to shut down
        ray_ops.stop()
        report(f"local: Serve and the Ray head stopped in {time.monotonic() - start:.1f} s")


def provider_inputs(settings: LocalSettings, serve_config: dict, proxy: str = "default",
                    models_dir: Optional[str] = None) -> dict:
    """The provider's input properties for a stack's local settings and Serve config; `models_dir`
    (absolute) is where the text app finds models by name."""
    return {
        "ray_env": {**ray_ops.serve_runtime_env(proxy), **({MODELS_ENV: models_dir} if models_dir else {})},
        "host": settings.host,
        "gcs_port": settings.gcs_port,
        "dashboard_port": settings.dashboard_port,
        "num_cpus": settings.num_cpus,
        "num_gpus": settings.num_gpus,
        "deploy_timeout_s": settings.deploy_timeout_s,
        "auth_mode": settings.auth_mode,
        "serve_config_json": json.dumps(serve_config, sort_keys=True),
    }


class LocalRayServe(pulumi.dynamic.Resource):
    """The dynamic resource managed by LocalServeProvider."""

    dashboard_url: pulumi.Output[str]
    app_urls: pulumi.Output[dict]
    config_hash: pulumi.Output[str]

    def __init__(self, name: str, props: dict, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            LocalServeProvider(), name,
            {**props, "dashboard_url": None, "app_urls": None, "config_hash": None}, opts,
        )
