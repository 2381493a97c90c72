"""`rayserve:rollout`: how a new version of the apps' code takes traffic, and when it is rolled back.

Shared by every platform's stack; a platform that steps traffic reads it (local). The thresholds' rules are
the gate's own (`gate.Thresholds`), checked once here so a bad value is one line naming its key.
"""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.config.types import Strict
from rayserve_pulumi.rollout.gate import Thresholds

__all__ = ["RolloutSettings"]


class RolloutSettings(Strict):
    """Gated rollouts: the new version beside the previous one, traffic moved to it in `steps` (percent), each
    step watched for `watch_s` and rolled back when the new version's error rate or p99 breaks a threshold, or
    it is not healthy within `step_budget_s`."""

    enabled: bool = Field(True, description="step a code change's traffic and gate it (false: roll the replicas "
                          "in place, as Serve does)")
    steps: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], description="percent of traffic on the new "
                             "version at each step, increasing, ending at 100")
    max_error_rate: float = Field(0.01, description="failed / sent requests of the new version above which it is "
                                  "rolled back")
    max_p99_ratio: float = Field(2.0, description="the new version's p99 latency over the previous version's "
                                 "above which it is rolled back")
    min_requests: int = Field(100, description="requests of each version in a step before latency is judged "
                              "(errors are judged against at least this many)")
    watch_s: float = Field(10, description="seconds a healthy step is watched before the next")
    step_budget_s: float = Field(300, description="seconds the new version may take to become healthy")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        if not v or v[-1] != 100 or any(not 0 < s <= 100 for s in v) or any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"steps {v}: percentages from 1 to 100, increasing, ending at 100 (e.g. [5, 25, 50, 100])")
        return v

    @model_validator(mode="after")
    def _thresholds(self):
        self.thresholds()  # the gate's own rules, each naming its key
        return self

    def thresholds(self) -> Thresholds:
        return Thresholds(max_error_rate=self.max_error_rate, max_p99_ratio=self.max_p99_ratio,
                          min_requests=self.min_requests, watch_s=self.watch_s, step_budget_s=self.step_budget_s)

    def inputs(self) -> dict:
        """As the local provider's input (plain values)."""
        return self.model_dump()

    @classmethod
    def from_inputs(cls, values: Optional[dict]) -> "RolloutSettings":
        """Back from a provider's input, where Pulumi's engine has made every number a float."""
        values = dict(values or {})
        if "steps" in values:
            values["steps"] = [int(s) if isinstance(s, float) and s.is_integer() else s for s in values["steps"]]
        if isinstance(values.get("min_requests"), float) and values["min_requests"].is_integer():
            values["min_requests"] = int(values["min_requests"])
        return cls(**values)
