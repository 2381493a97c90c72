"""The local head's lifecycle, without Pulumi: a real Ray head on this machine running the stack's apps.

create = `ray start --head` + deploy through the Serve REST API + wait for RUNNING; update = redeploy
in place, and when the new config ends DEPLOY_FAILED, UNHEALTHY or past its timeout, put the previous one
back at once (`RolledBack`: the previous config serves again); delete = stop the head's session (its PID
file: that Ray, nothing else);
read = what is live (an empty id when Ray is gone, a drift marker when the running applications are not
the applied ones). `provider.LocalServeProvider` hands these to Pulumi's engine; the no-CLI fallback
(`local.cli`) calls them directly and so never imports Pulumi (0.13 s of every `up`). Every step reports
one line (through Pulumi's log under the engine, on stderr otherwise).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.serve import app_urls, serve_port
from rayserve_pulumi.config.stack import LocalSettings, MetricsSettings, ServeSettings
from rayserve_pulumi.constants import DASHBOARD_METRICS_PORT, SERVE_PROXY_ENV
from rayserve_pulumi.local import head
from rayserve_pulumi.node_agent import procs, ray_ops
from rayserve_pulumi.rollout.settings import RolloutSettings
from rayserve_pulumi.serve_apps.seq2seq import MODELS_ENV

__all__ = [
    "RESTART_KEYS", "DRIFTED", "CODE_VERSION_ENV", "pinned", "deployed_config", "planned_changes", "plan_lines",
    "RolledBack", "with_code_version", "report", "head_pid_file",
    "prometheus_pid_file", "prometheus_url", "start_prometheus", "IPC_CONNECT_RETRY", "haproxy_files_env", "head_env",
    "spawn_head",
    "stop_started", "wait_prometheus", "dashboard_url", "serve_base_url", "Applied", "LocalServe",
    "provider_inputs",
]

# Inputs whose change needs a new Ray head (everything else is a Serve redeploy in place).
RESTART_KEYS = ("host", "gcs_port", "dashboard_port", "num_cpus", "num_gpus", "ray_client_port", *head.AGENT_PORTS,
                "auth_mode", "ray_env", "metrics", "app_dir")
DRIFTED = "drifted"  # config_hash after a read that found other applications than the applied ones
# in every application's runtime_env once the apps' code changed under a running head: Serve then starts
# replicas that import it anew. Not on a fresh head: a runtime_env costs every worker a round trip through
# Ray's runtime-env agent (a cold up of fruit and calc deployed in 8.5 s with it against 7.0 s without).
CODE_VERSION_ENV = "RAYSERVE_CODE_VERSION"


def planned_changes(olds: dict, news: dict) -> tuple[list, bool]:
    """(the head's own changes between two provider inputs as rollout.plan Changes, whether the apps' code
    reaches the running replicas as a new version)."""
    from rayserve_pulumi.rollout.plan import NEW_HEAD, Change

    keys = tuple(k for k in RESTART_KEYS if olds.get(k) != news.get(k))
    if keys:
        return [Change("Ray head", NEW_HEAD, keys, note="every application is down until the new head serves it")], False
    return [], olds.get("code_version") != news.get("code_version")


def plan_lines(olds: dict, news: dict) -> list[str]:
    """What an `up` from `olds` to `news` will do, one line per change (rollout.plan)."""
    from rayserve_pulumi.rollout.plan import serve_changes

    head, code_rolls = planned_changes(olds, news)
    if head:
        return [c.line() for c in head]
    lines = [c.line() for c in serve_changes(json.loads(olds.get("serve_config_json") or '{"applications": []}'),
                                             json.loads(news["serve_config_json"]), code_rolls)]
    if not lines and olds.get("config_hash") == DRIFTED:
        lines.append("Serve: redeployed (the live applications drifted from the applied config)")
    return lines


class RolledBack(RuntimeError):
    """A new config failed to deploy and the previous one was put back: the previous config is serving."""


def with_code_version(config: dict, version: str) -> dict:
    """The config with the code's version in every application's runtime_env env_vars: Serve treats a changed
    runtime_env as new code (a new build and replicas in new worker processes), a user_config-only change
    not."""
    apps = []
    for app in config["applications"]:
        env = dict(app.get("runtime_env") or {})
        env["env_vars"] = {**(env.get("env_vars") or {}), CODE_VERSION_ENV: version}
        apps.append({**app, "runtime_env": env})
    return {**config, "applications": apps}


def pinned(config: dict, version: str, code_dir: str) -> dict:
    """The config with every application importing the code of `version` from its copy `code_dir` (first on
    its workers' import path): a replica started later, or a rollback, runs exactly that code, whatever
    app_dir holds by then."""
    config = with_code_version(config, version)
    for app in config["applications"]:
        app["runtime_env"]["env_vars"]["PYTHONPATH"] = code_dir
    return config


def deployed_config(props: dict) -> dict:
    """The Serve config exactly as `_deploy` sends it for these inputs: the apps (a team's app_dir, or the
    bundled apps) pinned to the copy of their code's version."""
    from rayserve_pulumi.local.rollout import code_copy

    version = props["code_version"]
    return pinned(json.loads(props["serve_config_json"]), version, str(code_copy(props["run_dir"], version)))


def report(message: str) -> None:
    """One progress line: Pulumi's log when an engine is listening (`pulumi up`), else stderr. Pulumi is
    looked up only when something already imported it: the no-CLI fallback never pays for its import."""
    settings = sys.modules.get("pulumi.runtime.settings")
    if settings is not None and settings.get_engine() is not None:
        sys.modules["pulumi"].log.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def head_pid_file(props: dict) -> Path:
    """The PID file of the Ray head's session: what `delete` stops, and nothing else."""
    return Path(props["run_dir"]) / "ray-head.pid"


def prometheus_pid_file(props: dict) -> Path:
    return Path(props["run_dir"]) / "prometheus.pid"


def prometheus_url(props: dict) -> Optional[str]:
    metrics = props.get("metrics") or {}
    return f"http://{props['host']}:{int(metrics['port'])}" if metrics.get("enabled") else None


def start_prometheus(props: dict) -> str:
    """A real Prometheus on local.host, scraping every node of the Ray head through the service-discovery
    file the head writes, with the package's alert rules; `wait_prometheus` waits for it while the head starts."""
    from rayserve_pulumi.observability import prometheus

    metrics = props["metrics"]
    return prometheus.start(Path(props["run_dir"]) / "prometheus", props["host"], int(metrics["port"]),
                            int(metrics["scrape_interval_s"]), prometheus_pid_file(props),
                            prometheus.sd_file(ray_temp_dir(props)))


def ray_temp_dir(props: dict) -> str:
    """The head's own Ray temp dir (its sessions, logs, sockets and service-discovery file): one per stack,
    so two stacks' heads on this machine never share one."""
    from rayserve_pulumi.observability import prometheus

    return prometheus.ray_temp_dir(str(head_pid_file(props)))


def haproxy_files_env(temp_dir: str) -> dict[str, str]:
    """Serve's HAProxy files (config, admin and metrics sockets, server state) in the head's own Ray temp dir,
    where Ray keeps one folder per node beneath the given paths: Ray's default, /tmp/haproxy-serve, is shared
    by every head on the machine and outlives them; this one goes with the head (`delete`). Short, as HAProxy
    takes a log socket path of 97 bytes at most: the temp dir, `/hap/`, a 56-character node ID and
    `/metrics.sock` take 95."""
    base = f"{temp_dir}/hap"
    return {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{base}/haproxy.cfg",
            "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{base}/admin.sock",
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": base,
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{base}/server-state",
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{base}/metrics.sock"}


# A Ray process connecting to a local socket that is not there yet (the raylet to its own object store,
# a worker to the raylet) retries every 1000 ms, 10 times. The raylet's first try races the store thread it
# has just started, and on two busy cores lost it in about half the starts measured: a whole second of a
# cold start with both cores idle (bench.head_bench). The same 10 s budget in 100 ms steps.
IPC_CONNECT_RETRY = {"RAY_raylet_client_connect_timeout_milliseconds": "100",
                     "RAY_raylet_client_num_connect_attempts": "100"}


def head_env(props: dict) -> dict[str, str]:
    """The environment the head starts with beyond this process's: `ray_env` (which wins), IPC_CONNECT_RETRY,
    and Ray's worker start-up cap lifted to num_cpus. Ray starts at most min(this machine's cores, num_cpus)
    worker processes at once; a Serve deploy needs a dozen (controller, proxies, build tasks, replicas) and
    each start waits on round trips as well as CPU (README "Performance": alternating cold ups)."""
    env = {**IPC_CONNECT_RETRY, "RAY_worker_maximum_startup_concurrency": str(int(props["num_cpus"])),
           **(props.get("ray_env") or {})}
    if props.get("app_dir"):  # the apps' code, first on every Ray worker's import path (nothing is downloaded)
        env["PYTHONPATH"] = os.pathsep.join([props["app_dir"], *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def spawn_head(props: dict, extra_env: dict[str, str]) -> None:
    """Start the head these inputs describe (local.head), its session recorded in head_pid_file."""
    head.spawn(head_pid_file(props), node_ip=props["host"], gcs_port=int(props["gcs_port"]),
               dashboard_port=int(props["dashboard_port"]), dashboard_host=props["host"],
               num_cpus=int(props["num_cpus"]), num_gpus=int(props.get("num_gpus", 0)),
               ray_client_port=props.get("ray_client_port"), temp_dir=ray_temp_dir(props),
               **{key: int(props[key]) for key in head.AGENT_PORTS},
               auth_mode=props.get("auth_mode", "token"), extra_env=extra_env)


def stop_started(props: dict) -> None:
    """Stop what `create` started for these inputs (the head's session, Prometheus'), by their PID files."""
    ray_ops.stop(head_pid_file(props))
    procs.stop(prometheus_pid_file(props))


def wait_prometheus(props: dict, timeout: float = 60) -> None:
    url, deadline = prometheus_url(props), time.monotonic() + timeout
    while not ray_ops.http_ok(url + "/-/ready"):
        if time.monotonic() > deadline:
            procs.stop(prometheus_pid_file(props), grace_s=2)
            raise TimeoutError(f"Prometheus at {url} not ready within {timeout:.0f} s "
                               f"(see {Path(props['run_dir']) / 'prometheus' / 'prometheus.log'})")
        time.sleep(0.1)


def dashboard_url(props: dict) -> str:
    return f"http://{props['host']}:{int(props['dashboard_port'])}"


def serve_base_url(props: dict, config: dict) -> str:
    return f"http://{props['host']}:{serve_port(config)}"


@dataclass(frozen=True)
class Applied:
    """What an operation leaves applied: the resource's id ("" when nothing is live) and its properties."""

    id: str
    outs: dict


class LocalServe:
    """Create, read, diff, update and delete a local Ray head + Serve deployment (inputs: provider_inputs)."""

    def _deploy(self, props: dict) -> dict:
        config = json.loads(props["serve_config_json"])
        dash = dashboard_url(props)
        ray_ops.wait_dashboard(dash)
        names = [a["name"] for a in config["applications"]]
        start = time.monotonic()
        report(f"serve: deploying {len(names)} application(s): {', '.join(names)}")
        from rayserve_pulumi.local.rollout import snapshot

        # the copy the config pins (local.rollout: what a rollback imports)
        snapshot(props["run_dir"], props.get("app_dir"), props["code_version"])
        ray_ops.deploy(dash, deployed_config(props))
        ray_ops.wait_running(dash, names, timeout=float(props.get("deploy_timeout_s", 300)),
                             on_progress=lambda line: report(f"serve: {line}"))
        report(f"serve: every application RUNNING after {time.monotonic() - start:.1f} s")
        return self._applied(props)

    @staticmethod
    def _applied(props: dict) -> dict:
        """The state once `props` serve: the inputs and what they made reachable."""
        config = json.loads(props["serve_config_json"])
        return {
            **props,
            "dashboard_url": dashboard_url(props),
            "prometheus_url": prometheus_url(props),
            "app_urls": app_urls(serve_base_url(props, config), config),
            "config_hash": ray_ops.config_hash(config),
        }

    def create(self, props: dict[str, Any]) -> Applied:
        adopted = ray_ops.serve_api_answers(dashboard_url(props))  # one request: nothing listening is "no" at once
        if adopted:  # a head is already serving on these ports (e.g. a retried create)
            report(f"local: adopting the Ray head already at {dashboard_url(props)}")
        extra_env = head_env(props)
        prometheus = None if adopted else prometheus_url(props)
        try:  # whatever fails, what this create started is stopped: the stack is left as it was
            if prometheus:
                report(f"local: Prometheus at {prometheus} (scraping every Ray node every "
                       f"{int(props['metrics']['scrape_interval_s'])} s)")
                extra_env["RAY_PROMETHEUS_HOST"] = start_prometheus(props)  # the dashboard embeds its metrics
            if not adopted:
                start = time.monotonic()
                report(f"local: starting the Ray head ({props['host']}, {int(props['num_cpus'])} CPUs, "
                       f"auth {props.get('auth_mode', 'token')})")
                spawn_head(props, extra_env)
                how = head.launcher_file(head_pid_file(props)).read_text()
                report(f"local: Ray head started in {time.monotonic() - start:.1f} s by {how}; dashboard "
                       f"{dashboard_url(props)}")
                if prometheus:
                    wait_prometheus(props)
            outs = self._deploy(props)
        except BaseException:
            if not adopted:
                stop_started(props)
            raise
        return Applied(f"local-ray-{props['host']}-{int(props['gcs_port'])}", outs)

    @staticmethod
    def diff(olds: dict[str, Any], news: dict[str, Any]) -> tuple[bool, list[str]]:
        """(anything to do, the inputs that need a new Ray head: delete, then create)."""
        replaces = [k for k in RESTART_KEYS if olds.get(k) != news.get(k)]
        changed = replaces or any(olds.get(k) != news.get(k) for k in ("serve_config_json", "deploy_timeout_s",
                                                                       "code_version")) \
            or olds.get("config_hash") == DRIFTED
        return bool(changed), replaces

    def update(self, news: dict[str, Any], olds: Optional[dict[str, Any]] = None) -> dict:
        """Redeploy in place (the same head and, for a user_config change, the same replica processes). New code
        of the apps (a team's, or the bundled apps after a package upgrade) goes out gated (`_stepped`) unless
        `rollout.enabled` is false. When the new config fails (DEPLOY_FAILED, UNHEALTHY, or not RUNNING within
        deploy_timeout_s) and `olds` was applied, `olds` is deployed again at once and RolledBack says so with
        the failure's cause."""
        changed = olds is not None and olds.get("code_version") != news.get("code_version")
        if changed and self._steppable(news, olds):
            return self._stepped(news, olds)
        try:
            return self._deploy(news)
        except (ray_ops.ServeDeployError, TimeoutError) as exc:
            if not olds or not olds.get("serve_config_json"):
                raise
            cause = str(exc)
            report(f"serve: the new config failed ({cause}); putting the previous config "
                   f"{olds.get('config_hash')} back")
            self._deploy(olds)
            raise RolledBack(f"{cause}; rolled back: the previous config {olds.get('config_hash')} is serving") \
                from None

    @staticmethod
    def _steppable(news: dict, olds: dict) -> bool:
        """A gated rollout needs the previous version's code copy (made when it was deployed) and the gate on."""
        from rayserve_pulumi.local.rollout import code_copy
        from rayserve_pulumi.rollout.stepped import Stepped

        if not RolloutSettings.from_inputs(news.get("rollout")).enabled:
            return False
        if olds.get("app_dir") != news.get("app_dir") or olds.get("config_hash") == DRIFTED:
            return False
        if not code_copy(olds["run_dir"], olds["code_version"]).is_dir():
            report("rollout: no copy of the running version's code; updating in place without a gated rollout")
            return False
        if (why := Stepped.possible(deployed_config(olds))):
            report(f"rollout: {why}; updating in place without a gated rollout")
            return False
        return True

    def _stepped(self, news: dict, olds: dict) -> dict:
        """The new code beside the running one, traffic moved to it in steps, each gated (rollout.stepped)."""
        from rayserve_pulumi.local.rollout import snapshot
        from rayserve_pulumi.rollout import ingress_hold
        from rayserve_pulumi.rollout.stepped import RolloutFailed, Stepped

        settings = RolloutSettings.from_inputs(news.get("rollout"))
        snapshot(news["run_dir"], news.get("app_dir"), news["code_version"])
        config = json.loads(news["serve_config_json"])
        rollout = Stepped(dashboard_url(news), serve_base_url(news, config), deployed_config(olds),
                          deployed_config(news), settings.thresholds(), settings.steps, report,
                          haproxy_socket=(news.get("ray_env") or {}).get(ingress_hold.SOCKET_ENV))  # under HAProxy
        try:
            rollout.run()
        except RolloutFailed as exc:
            report(f"rollout: {exc}; the previous version {olds.get('code_version')} serves every request")
            raise RolledBack(f"rollout of code {news.get('code_version')} {exc}; the previous version "
                             f"{olds.get('code_version')} is serving") from None
        return self._applied(news)  # the rollout ended on deployed_config(news), every application RUNNING

    def read(self, id_: str, props: dict[str, Any]) -> Applied:
        """What is live: nothing (empty id) when the Ray head no longer answers; the applied state when the
        running applications are the applied ones, all RUNNING; else the same with a drift marker."""
        dash = dashboard_url(props)
        try:
            ray_ops.wait_dashboard(dash, timeout=2)
        except TimeoutError:
            report(f"local: the Ray head at {dash} is gone")
            return Applied("", {})
        live = ray_ops.applications(dash)
        applied = json.loads(props.get("serve_config_json") or '{"applications": []}')
        wanted = {a["name"] for a in applied["applications"]}
        statuses = {name: app.get("status") for name, app in live.items()}
        if set(statuses) != wanted or any(s != "RUNNING" for s in statuses.values()):
            report(f"local: Serve drifted from the applied config: live {statuses}, applied {sorted(wanted)}")
            return Applied(id_, {**props, "config_hash": DRIFTED})
        return Applied(id_, props)

    def delete(self, props: dict[str, Any]) -> None:
        """Stop the head's session and Prometheus', then remove the head's own Ray temp dir (its logs with it: a
        failed create keeps them). Serve is not shut down application by application first: nothing of it
        outlives Ray here, and that alone took 10-30 s."""
        from rayserve_pulumi.observability import prometheus

        start = time.monotonic()
        stop_started(props)
        prometheus.remove_ray_temp_dir(ray_temp_dir(props))
        report(f"local: Serve and the Ray head stopped in {time.monotonic() - start:.1f} s")


def provider_inputs(settings: LocalSettings, serve_config: dict, run_dir: str, serve_env: Optional[dict] = None,
                    models_dir: Optional[str] = None, metrics: Optional[MetricsSettings] = None,
                    code: Optional[AppCode] = None, rollout: Optional[dict] = None) -> dict:
    """The provider's input properties for a stack's local settings and Serve config. Serve's proxy listens
    on `settings.host` like every other listener; `run_dir` (absolute) keeps the head's PID file;
    `models_dir` (absolute) is where the text app finds models by name; `code` is the apps' code (default
    the bundled apps): its folder goes on the workers' import path, its digest into `code_version`."""
    code = code or AppCode.bundled_apps()
    serve_config = {**serve_config, "http_options": {**(serve_config.get("http_options") or {}), "host": settings.host}}
    metrics = metrics or MetricsSettings()
    serve_env = ServeSettings().runtime_env() if serve_env is None else serve_env
    # HAProxy's two listeners on every interface and its fallback proxy: the stack's own ports, so two local
    # heads can run at once (and neither's HAProxy falls back to the other's proxy)
    haproxy = {"RAY_SERVE_HAPROXY_STATS_PORT": str(settings.haproxy_stats_port),
               "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.haproxy_metrics_port),
               "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(settings.fallback_proxy_port),
               "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(settings.fallback_proxy_grpc_port),
               "RAY_SERVE_HAPROXY_NBTHREAD": str(settings.haproxy_threads),
               **haproxy_files_env(ray_temp_dir({"run_dir": run_dir}))}
    # Ray's own default needs no variable (and a stack that keeps it keeps its inputs, so no new head)
    moved = {} if settings.dashboard_metrics_port == DASHBOARD_METRICS_PORT else {
        "DASHBOARD_METRIC_PORT": str(settings.dashboard_metrics_port)}
    return {
        "run_dir": run_dir,
        "ray_env": {**serve_env, **({MODELS_ENV: models_dir} if models_dir else {}), **moved,
                    **(haproxy if SERVE_PROXY_ENV["haproxy"].items() <= serve_env.items() else {})},
        "host": settings.host,
        "gcs_port": settings.gcs_port,
        "dashboard_port": settings.dashboard_port,
        "num_cpus": settings.num_cpus,
        "num_gpus": settings.num_gpus,
        "ray_client_port": settings.ray_client_port,
        **{key: getattr(settings, key) for key in head.AGENT_PORTS},
        "deploy_timeout_s": settings.deploy_timeout_s,
        "auth_mode": settings.auth_mode,
        "metrics": {"enabled": metrics.enabled, "port": metrics.prometheus_port,
                    "scrape_interval_s": metrics.scrape_interval_s},
        "serve_config_json": json.dumps(serve_config, sort_keys=True),
        "app_dir": None if code.bundled else str(code.root),
        "code_version": code.digest()[:16],
        "rollout": rollout if rollout is not None else RolloutSettings().inputs(),
    }
