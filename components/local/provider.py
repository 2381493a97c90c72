"""The `local` platform's Pulumi dynamic provider: `lifecycle.LocalServe` handed to Pulumi's engine.

Tests call its methods directly against a real local Ray; `rayserve_pulumi.local.LocalPlatform` is the
component.
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from rayserve_pulumi.local.lifecycle import LocalServe, plan_lines, report

__all__ = ["LocalServeProvider", "LocalRayServe"]


class LocalServeProvider(ResourceProvider):
    """CRUD for a local Ray head + Serve deployment (inputs: lifecycle.provider_inputs)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        applied = LocalServe().create(props)
        return CreateResult(id_=applied.id, outs=applied.outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes, replaces = LocalServe.diff(olds, news)
        if changes:  # the rollout plan in the preview's output
            for line in plan_lines(olds, news):
                report(f"plan: {line}")
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """A failed new config puts `olds` back and fails the update: Pulumi keeps `olds` as the state."""
        return UpdateResult(outs=LocalServe().update(news, olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        applied = LocalServe().read(id_, props)
        return ReadResult(id_=applied.id, outs=applied.outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        LocalServe().delete(props)


class LocalRayServe(pulumi.dynamic.Resource):
    """The dynamic resource managed by LocalServeProvider."""

    dashboard_url: pulumi.Output[str]
    prometheus_url: pulumi.Output[Optional[str]]
    app_urls: pulumi.Output[dict]
    config_hash: pulumi.Output[str]

    def __init__(self, name: str, props: dict, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            LocalServeProvider(), name,
            {**props, "dashboard_url": None, "prometheus_url": None, "app_urls": None, "config_hash": None}, opts,
        )
