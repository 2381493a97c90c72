"""The rollout plan: for each change between two validated stacks, what Serve or the platform will do with it
and the peak extra replicas or pods it needs. `rayserve render --since OLD_STACK` prints it.

Serve decides per deployment option (its `DeploymentConfig` marks each option's update type): a lightweight
option is applied in place, a reconfigure option calls the replicas' `reconfigure()` in place, and everything
else (code, `args`, `runtime_env`, `ray_actor_options`, placement) replaces the replicas in a rolling update,
`rolling_update_percentage` of them at a time, starting up to `max_surge_percent` extra replicas first (with
Serve's default 0 it stops old replicas before the new ones start: capacity dips). What the platform adds (a
new Ray head, a new KubeRay cluster, an incremental upgrade) comes from its description (`PlatformSpec`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

__all__ = ["IN_PLACE", "RECONFIGURE", "REPLICA_ROLL", "ADDED", "REMOVED", "NEW_CLUSTER", "INCREMENTAL",
           "NEW_HEAD", "NOT_APPLIED", "Change", "update_types", "serve_changes", "plan", "describe"]

IN_PLACE = "in place"  # Serve sets the new target; no replica restarts
RECONFIGURE = "in place (reconfigure)"  # the running replicas' reconfigure() gets the new values
REPLICA_ROLL = "replica roll"  # Serve replaces the replicas, a batch at a time
ADDED, REMOVED = "added", "removed"
NEW_CLUSTER = "new cluster"  # KubeRay NewCluster: a whole new cluster, traffic switched once it is ready
INCREMENTAL = "incremental upgrade"  # KubeRay NewClusterWithIncrementalUpgrade: traffic moved in steps
NEW_HEAD = "new Ray head"  # local: the head restarts; every application is down until it is back
NOT_APPLIED = "not applied"  # KubeRay upgradeStrategy None: the running cluster keeps its old spec

# Serve's update types (ray.serve._private.utils.DeploymentOptionUpdateType), as of Ray 2.60; read from Ray
# itself when it is importable (update_types), this copy only where it is not.
_RAY_UPDATE_TYPES = {
    "num_replicas": "LightWeight", "max_queued_requests": "LightWeight", "rolling_update_percentage": "LightWeight",
    "max_surge_percent": "LightWeight", "graceful_shutdown_timeout_s": "NeedsReconfigure",
    "health_check_period_s": "NeedsReconfigure", "health_check_timeout_s": "NeedsReconfigure",
    "max_constructor_retry_count": "NeedsReconfigure", "max_ongoing_requests": "NeedsActorReconfigure",
    "backpressure_config": "NeedsActorReconfigure", "user_config": "NeedsActorReconfigure",
    "graceful_shutdown_wait_loop_s": "NeedsActorReconfigure", "autoscaling_config": "NeedsActorReconfigure",
    "request_router_config": "NeedsActorReconfigure", "logging_config": "NeedsActorReconfigure",
    "version": "HeavyWeight", "gang_scheduling_config": "HeavyWeight", "deployment_actors": "HeavyWeight",
}
_KIND = {"LightWeight": IN_PLACE, "NeedsReconfigure": RECONFIGURE, "NeedsActorReconfigure": RECONFIGURE,
         "HeavyWeight": REPLICA_ROLL}
_ORDER = [IN_PLACE, RECONFIGURE, REPLICA_ROLL]
_APP_IN_PLACE = ("route_prefix", "name")  # the proxies' routes change; the replicas do not
_APP_CODE = ("import_path", "runtime_env", "args")  # a new code version: every deployment of the app rolls
DEFAULT_ROLLING = 0.2  # Serve's DEFAULT_ROLLING_UPDATE_PERCENTAGE


@dataclass(frozen=True)
class Change:
    """One thing that changes, what happens to it, and what it needs beyond the steady state."""

    subject: str  # "fruit/MangoStand", "application calc", "cluster"
    kind: str
    keys: tuple[str, ...]  # what changed
    peak_extra: int = 0  # replicas (Serve) or pods (cluster) beyond the steady state during the change
    unit: str = "replicas"
    note: str = ""

    def line(self) -> str:
        extra = f", peak +{self.peak_extra} {self.unit}" if self.kind not in (REMOVED, NOT_APPLIED) else ""
        return f"{self.subject}: {self.kind} ({', '.join(self.keys)}){extra}" + (f"; {self.note}" if self.note else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "keys": list(self.keys)}


def update_types() -> dict[str, str]:
    """Deployment option -> Serve's update type, from the installed Ray (private API, isolated here)."""
    try:
        from ray.serve._private.config import DeploymentConfig
    except ImportError:
        return dict(_RAY_UPDATE_TYPES)
    found = {}
    for name, field in DeploymentConfig.model_fields.items():
        kind = (field.json_schema_extra or {}).get("update_type") if isinstance(field.json_schema_extra, dict) else None
        if kind is not None:
            found[name] = getattr(kind, "value", str(kind))
    return found or dict(_RAY_UPDATE_TYPES)


def _target(d: dict) -> int:
    """The replicas a deployment runs in steady state (autoscaling: its floor, at least one)."""
    if isinstance(d.get("num_replicas"), int):
        return d["num_replicas"]
    scaling = d.get("autoscaling_config") or {}
    return max(1, int(scaling.get("initial_replicas") or scaling.get("min_replicas") or 1))


def _roll(subject: str, keys: tuple[str, ...], d: dict) -> Change:
    target = _target(d)
    surge = (int(d.get("max_surge_percent") or 0) * target + 99) // 100  # Serve's integer ceiling
    batch = max(int(float(d.get("rolling_update_percentage") or DEFAULT_ROLLING) * target), 1)
    if surge:
        note = f"{surge} new replica(s) start before old ones stop ({target} in steady state)"
    else:
        note = (f"Serve stops {min(batch, target)} of {target} replica(s) before their replacements start: capacity "
                f"dips to {target - min(batch, target)}; set max_surge_percent to start replacements first")
    return Change(subject, REPLICA_ROLL, keys, surge, note=note)


def _deployments(app: dict) -> dict[str, dict]:
    return {d["name"]: d for d in app.get("deployments") or []}


def serve_changes(old: dict, new: dict, code_changed: bool = False) -> list[Change]:
    """What Serve does with each change from Serve config `old` to `new`; `code_changed`: the apps' code is
    another version (every application rolls its replicas)."""
    types = update_types()
    olds = {a["name"]: a for a in old.get("applications") or []}
    changes: list[Change] = []
    for app in new.get("applications") or []:
        name = app["name"]
        before = olds.pop(name, None)
        if before is None:
            changes.append(Change(f"application {name}", ADDED, ("applications",),
                                  sum(_target(d) for d in _deployments(app).values())))
            continue
        app_keys = tuple(k for k in sorted(set(app) | set(before)) if k != "deployments" and app.get(k) != before.get(k))
        code_keys = tuple(k for k in app_keys if k in _APP_CODE) + (("code",) if code_changed else ())
        if app_keys and not code_keys:
            changes.append(Change(f"application {name}", IN_PLACE, app_keys))
        was = _deployments(before)
        for dname, d in _deployments(app).items():
            subject, prior = f"{name}/{dname}", was.pop(dname, {})
            keys = tuple(k for k in sorted(set(d) | set(prior)) if k != "name" and d.get(k) != prior.get(k))
            if code_keys:
                changes.append(_roll(subject, code_keys + keys, d))
            elif keys:
                kind = max((_KIND.get(types.get(k, "HeavyWeight"), REPLICA_ROLL) for k in keys), key=_ORDER.index)
                if kind == REPLICA_ROLL:
                    changes.append(_roll(subject, keys, d))
                else:
                    changes.append(Change(subject, kind, keys, max(0, _target(d) - _target(prior))))
        changes += [Change(f"{name}/{dname}", REMOVED, ("deployments",)) for dname in was]
    changes += [Change(f"application {name}", REMOVED, ("applications",)) for name in olds]
    return changes


def plan(spec, old, new) -> list[Change]:
    """Every change from `old` to `new` (platform_spec.Planned, one platform): the platform's own, then Serve's
    on the running cluster unless the platform replaces it (a new head or cluster runs everything anew)."""
    platform, code_rolls = spec.rollout_changes(old, new)
    if any(c.kind in (NEW_CLUSTER, INCREMENTAL, NEW_HEAD) for c in platform):
        return platform
    return platform + serve_changes(old.serve_config, new.serve_config, code_rolls)


def describe(changes: list[Change], platform: Optional[str] = None) -> dict:
    """The plan as `rayserve render` prints it."""
    if not changes:
        return {"changes": [], "summary": "nothing changes"}
    return {"changes": [c.line() for c in changes],
            "peak_extra": {unit: sum(c.peak_extra for c in changes if c.unit == unit)
                           for unit in sorted({c.unit for c in changes})},
            **({"platform": platform} if platform else {})}
