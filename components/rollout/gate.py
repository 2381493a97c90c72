"""The rollout gate: whether a new version's traffic step may proceed, must wait, or must be rolled back,
from what that version served during the step against what the previous version served.

Standard library only, so it runs wherever a rollout is driven. The figures are two readings of one
version's cumulative counters (`Sample`): requests, failures and a latency histogram. On `local` they are
the rollout splitter's own per-version counts (rollout.splitter); Serve's metrics in a Prometheus
(`ray_serve_num_http_requests_total`, `..._error_requests_total`, the latency histogram) have the same
shape, and tests/rollout feeds the gate such series.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["LATENCY_BUCKETS_MS", "SERVE_LATENCY_BUCKETS_ENV", "Thresholds", "Sample", "Window", "Decision", "PROCEED",
           "WAIT", "ROLLBACK", "histogram_quantile", "window_between", "error_rate_breached", "error_rate_rollback",
           "decide", "cause"]

PROCEED, WAIT, ROLLBACK = "proceed", "wait", "rollback"

# Upper bounds (ms) of every request-latency histogram a rollout gate reads: the splitter's own (local, vm),
# and Serve's (the KubeRay gate's), through Ray's RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS, which
# config.ServeSettings.runtime_env sets on every Ray process. Four to each doubling from 1 ms to 65.5 s, then
# Ray's own longest. A p99 is interpolated within its bucket, so it reads at most one bucket's width (19 %)
# off. With buckets 2x wide or more (Ray's default outside 100-500 ms) a 2x threshold cannot be judged: two
# versions 2.6x apart can fall in neighbouring buckets and read 2.0x.
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(float(f"{2 ** (k / 4):.3g}") for k in range(65)) + (
    120000.0, 300000.0, 600000.0)
SERVE_LATENCY_BUCKETS_ENV = {"RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS": ",".join(f"{b:g}" for b in LATENCY_BUCKETS_MS)}


@dataclass(frozen=True)
class Thresholds:
    """What a step must stay within. Defaults: 1 % errors, p99 at most 2x the previous version's."""
    max_error_rate: float = 0.01  # failed requests / requests
    max_p99_ratio: float = 2.0  # the new version's p99 / the previous version's
    min_requests: int = 50  # below this, latency is not judged (errors still are, against this many)
    watch_s: float = 30  # how long a healthy step is watched before it may proceed
    step_budget_s: float = 300  # how long a step may wait for its replicas to become healthy

    def __post_init__(self) -> None:
        for name in ("max_error_rate", "max_p99_ratio", "watch_s", "step_budget_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
        if not 0 <= self.max_error_rate < 1:
            raise ValueError(f"max_error_rate must be at least 0 and below 1, not {self.max_error_rate}")
        if self.max_p99_ratio < 1:
            raise ValueError(f"max_p99_ratio must be at least 1, not {self.max_p99_ratio}")
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int) or self.min_requests < 1:
            raise ValueError(f"min_requests must be a whole number of at least 1, not {self.min_requests!r}")
        if not 0 < self.watch_s <= self.step_budget_s:
            raise ValueError(f"watch_s must be above 0 and at most step_budget_s ({self.step_budget_s}), "
                             f"not {self.watch_s}")


@dataclass(frozen=True)
class Sample:
    """One scrape of one version's cumulative counters: requests, failed requests, and the latency
    histogram's buckets (upper bound in ms -> cumulative count; +Inf included)."""
    requests: float
    errors: float
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """What one version served between two scrapes."""
    requests: int
    errors: int
    p99_ms: Optional[float]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Decision:
    action: str  # PROCEED, WAIT or ROLLBACK
    reason: str
    observed: Optional[float] = None
    threshold: Optional[float] = None

    def __str__(self) -> str:
        if self.observed is None:
            return f"{self.action}: {self.reason}"
        return f"{self.action}: {self.reason} {self.observed:g} (threshold {self.threshold:g})"


def histogram_quantile(q: float, buckets: dict[float, float]) -> Optional[float]:
    """Prometheus' histogram_quantile over cumulative buckets: linear within the bucket the rank falls in;
    the highest finite bound when it falls in +Inf; None without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][0] != math.inf or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if upper == math.inf:
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def window_between(before: Sample, after: Sample) -> Window:
    """The requests, failures and p99 of the scrapes' difference (a counter that went down was reset: a
    replica restarted, so the later scrape counts from zero)."""
    def delta(a: float, b: float) -> float:
        return b - a if b >= a else b

    buckets = {le: delta(before.buckets.get(le, 0.0), count) for le, count in after.buckets.items()}
    return Window(requests=int(delta(before.requests, after.requests)), errors=int(delta(before.errors, after.errors)),
                  p99_ms=histogram_quantile(0.99, buckets))


def error_rate_breached(errors: float, requests: float, max_error_rate: float, min_requests: int) -> bool:
    """More failures than `max_error_rate` of the requests, judged against at least `min_requests` (so one
    failure among a few requests is enough at 1 %): the gate's rule, and the splitter's for cutting a new
    version off at once."""
    return errors > max_error_rate * max(requests, min_requests)


def error_rate_rollback(errors: float, requests: float, max_error_rate: float) -> Decision:
    """The rollback for a breached error rate, with the rate observed."""
    return Decision(ROLLBACK, "error rate", round(errors / max(requests, 1), 4), max_error_rate)


def decide(t: Thresholds, new: Window, previous: Optional[Window], elapsed_s: float, healthy: bool,
           require_latency: bool = False, rates: Optional[tuple[float, float]] = None) -> Decision:
    """The gate for one step, `elapsed_s` into it. Unhealthy replicas wait until the step's budget, then roll
    back. Failures roll back at once when they exceed the error rate of at least `min_requests` requests
    (so one failure among a few requests is enough at 1 %). Latency is judged once both versions served
    `min_requests`. A step watched for `watch_s` with neither proceeds; with `require_latency` (the step before
    all traffic moves) only once latency was judged, or when the step budget ran out without enough requests
    to judge it, or when at this step's `rates` (requests/s of the new and the previous version) the budget
    would run out first: waiting for traffic that is not coming (an idle stack) changes nothing."""
    if not healthy:
        if elapsed_s >= t.step_budget_s:
            return Decision(ROLLBACK, "replicas not healthy within the step budget, s:", elapsed_s, t.step_budget_s)
        return Decision(WAIT, "replicas not yet healthy")
    if error_rate_breached(new.errors, new.requests, t.max_error_rate, t.min_requests):
        return error_rate_rollback(new.errors, new.requests, t.max_error_rate)
    judged = (previous is not None and new.p99_ms is not None and bool(previous.p99_ms)
              and min(new.requests, previous.requests) >= t.min_requests)
    latency = ""
    if judged:
        ratio = new.p99_ms / previous.p99_ms
        if ratio > t.max_p99_ratio:
            return Decision(ROLLBACK, "p99 latency over the previous version's, x", round(ratio, 2), t.max_p99_ratio)
        latency = f"; p99 {new.p99_ms:.0f} ms, x{ratio:.2f} the previous version's {previous.p99_ms:.0f} ms"
    if elapsed_s >= t.watch_s and (judged or not require_latency):
        return Decision(PROCEED, f"watched {elapsed_s:.0f} s: {new.errors} failed of {new.requests}{latency}")
    served = (new.requests, previous.requests if previous else 0)
    if elapsed_s >= t.watch_s and rates is not None and any(
            count + rate * max(t.step_budget_s - elapsed_s, 0) < t.min_requests for count, rate in zip(served, rates)):
        return Decision(PROCEED, f"latency not judged: at {rates[0]:.1f} and {rates[1]:.1f} requests/s, "
                                 f"{served[0]} and {served[1]} requests would not reach {t.min_requests} within the "
                                 f"step budget; {new.errors} failed")
    if elapsed_s >= t.step_budget_s:
        return Decision(PROCEED, f"latency not judged: {served[0]} and {served[1]} requests of {t.min_requests} "
                                 f"within the step budget; {new.errors} failed")
    return Decision(WAIT, "watching")


def cause(exc: BaseException) -> str:
    """An exception as one line, for a rollout's messages: its type and its message, whitespace folded."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
