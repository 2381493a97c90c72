"""The rollout gate's decisions on the scenarios of safe rollouts (a good version, one failing 20 % of its
requests, one whose replicas never become healthy, one 3x slower), from cumulative Serve metrics as two
scrapes give them; its p99 is Prometheus' own (checked against promtool's engine)."""
from __future__ import annotations

import math
import shutil
import subprocess

import pytest
import yaml

from rayserve_pulumi.rollout.gate import (
    LATENCY_BUCKETS_MS, PROCEED, ROLLBACK, WAIT, Sample, Thresholds, Window, decide, histogram_quantile, window_between,
)

BOUNDS = (*LATENCY_BUCKETS_MS, math.inf)  # ms: the splitter's buckets, and Serve's on every Ray process


def _scrape(requests: int, errors: int, latencies_ms: list[float], start: Sample | None = None) -> Sample:
    """A version's counters after serving `requests` (latencies spread as given) on top of `start`."""
    base = start or Sample(0, 0, {b: 0 for b in BOUNDS})
    per = requests / len(latencies_ms)
    buckets = {b: base.buckets[b] + per * sum(1 for ms in latencies_ms if ms <= b) for b in BOUNDS}
    return Sample(base.requests + requests, base.errors + errors, buckets)


FAST = [4, 6, 8, 9, 12, 14, 18, 22, 30, 45]  # the previous version's latencies, ms
T = Thresholds()


def _windows(requests: int, errors: int, latencies: list[float], previous: list[float] = FAST) -> tuple[Window, Window]:
    before_new, before_old = _scrape(0, 0, [1]), _scrape(4000, 0, previous)
    new = window_between(before_new, _scrape(requests, errors, latencies, before_new))
    old = window_between(before_old, _scrape(requests, 0, previous, before_old))
    return new, old


def test_a_good_version_waits_while_watched_then_proceeds():
    new, old = _windows(600, 0, FAST)
    assert decide(T, new, old, elapsed_s=10, healthy=True).action == WAIT
    decision = decide(T, new, old, elapsed_s=T.watch_s, healthy=True)
    assert decision.action == PROCEED and "0 failed of 600; p99 " in decision.reason
    assert decision.reason.endswith(f"x1.00 the previous version's {old.p99_ms:.0f} ms")  # what latency was judged


def test_a_version_failing_a_fifth_of_its_requests_is_rolled_back_naming_the_error_rate():
    new, old = _windows(600, 120, FAST)
    decision = decide(T, new, old, elapsed_s=3, healthy=True)  # at once, not after the watch
    assert (decision.action, decision.reason, decision.observed, decision.threshold) == (ROLLBACK, "error rate", 0.2, 0.01)
    assert str(decision) == "rollback: error rate 0.2 (threshold 0.01)"


def test_one_failure_among_few_requests_is_enough_and_a_rate_within_the_threshold_is_not():
    assert decide(T, Window(10, 1, None), None, 1, True).action == ROLLBACK
    assert decide(T, Window(1000, 10, 20.0), Window(1000, 0, 20.0), 40, True).action == PROCEED  # 1 %, not over


def test_replicas_that_never_become_healthy_wait_then_roll_back_at_the_step_budget():
    empty = Window(0, 0, None)
    assert decide(T, empty, None, T.step_budget_s - 1, healthy=False).action == WAIT
    decision = decide(T, empty, None, T.step_budget_s, healthy=False)
    assert decision.action == ROLLBACK and decision.observed == T.step_budget_s


def test_a_version_three_times_slower_is_rolled_back_on_latency():
    new, old = _windows(600, 0, [3 * ms for ms in FAST])
    decision = decide(T, new, old, elapsed_s=5, healthy=True)
    assert decision.action == ROLLBACK and decision.reason.startswith("p99 latency")
    # the observed ratio is the histograms' (their buckets widen upwards), above the threshold
    assert decision.observed > decision.threshold == 2.0


@pytest.mark.parametrize("ratio, action", [(2.4, ROLLBACK), (3.0, ROLLBACK), (1.0, PROCEED), (1.65, PROCEED)])
def test_the_p99_ratio_read_off_the_buckets_is_within_a_bucket_of_the_true_one_at_any_latency(ratio, action):
    """Two versions whose every request is `ratio` times apart, at a latency anywhere from 2 ms to 30 s: the
    gate reads the ratio off the histograms within one bucket's width (19 %), so 2.4x always rolls back at 2x
    and 1.65x never does (with buckets 2x wide or more, as Serve's default outside 100-500 ms, 2.6x apart can
    read 2.0x)."""
    misjudged = []
    for step in range(400):
        base = 2 * 15000 ** (step / 399)  # ms, 2 ms to 30 s
        spread_ms = [base * (0.9 + 0.002 * i) for i in range(50)]  # the previous version's, within +-5 %
        new, old = _windows(600, 0, [ratio * ms for ms in spread_ms], spread_ms)
        decision = decide(T, new, old, elapsed_s=T.watch_s, healthy=True)
        if decision.action != action:
            misjudged.append((round(base, 1), str(decision)))
    assert not misjudged, misjudged[:5]


def test_latency_is_not_judged_on_too_few_requests():
    new, old = _windows(T.min_requests - 1, 0, [3 * ms for ms in FAST])
    assert decide(T, new, old, elapsed_s=T.watch_s, healthy=True).action == PROCEED


def test_before_all_traffic_moves_latency_must_be_judged_or_the_step_budget_spent():
    few, many = Window(10, 0, 30.0), Window(500, 0, 30.0)
    assert decide(T, few, many, T.watch_s, True, require_latency=True).action == WAIT
    assert decide(T, Window(500, 0, 35.0), many, T.watch_s, True, require_latency=True).action == PROCEED
    spent = decide(T, few, many, T.step_budget_s, True, require_latency=True)
    assert spent.action == PROCEED and spent.reason.startswith("latency not judged: 10 and 500 requests")
    slow = decide(T, Window(500, 0, 95.0), many, T.watch_s + 1, True, require_latency=True)
    assert slow.action == ROLLBACK and slow.observed == round(95 / 30, 2)


def test_before_all_traffic_moves_an_idle_stack_is_not_waited_for_until_the_budget():
    few, many = Window(10, 0, 30.0), Window(500, 0, 30.0)
    idle = decide(T, few, many, T.watch_s, True, require_latency=True, rates=(0.0, 0.0))
    assert idle.action == PROCEED and idle.reason.startswith("latency not judged: at 0.0 and 0.0 requests/s")
    # traffic that reaches min_requests before the budget runs out is waited for
    steady = T.min_requests / (T.step_budget_s - T.watch_s)
    assert decide(T, few, many, T.watch_s, True, require_latency=True, rates=(steady, steady)).action == WAIT
    trickle = decide(T, few, many, T.watch_s, True, require_latency=True, rates=(steady / 2, steady))
    assert trickle.action == PROCEED  # the new version would not get its requests within the budget
    # before watch_s, and outside the step before all traffic moves, rates change nothing
    assert decide(T, few, many, T.watch_s - 1, True, require_latency=True, rates=(0.0, 0.0)).action == WAIT
    assert decide(T, few, many, T.watch_s - 1, True, rates=(0.0, 0.0)).action == WAIT


def test_a_counter_reset_by_a_restarted_replica_counts_from_zero():
    before = _scrape(500, 5, FAST)
    after = _scrape(40, 1, FAST)  # the replica restarted: its counters started again
    assert (window_between(before, after).requests, window_between(before, after).errors) == (40, 1)


@pytest.mark.parametrize("bad", [dict(max_error_rate=1), dict(max_error_rate=float("nan")), dict(max_p99_ratio=0.5),
                                 dict(min_requests=0), dict(min_requests=True), dict(watch_s=0),
                                 dict(watch_s=400, step_budget_s=300), dict(step_budget_s=float("inf"))])
def test_thresholds_out_of_range_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Thresholds(**bad)


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="needs promtool from Debian's prometheus (scripts/setup.sh installs it)")
@pytest.mark.parametrize("latencies", [FAST, [3 * ms for ms in FAST], [700, 800, 900, 2000]])
def test_the_p99_is_prometheus_own_histogram_quantile(latencies, tmp_path):
    buckets = _scrape(1000, 0, latencies).buckets
    ours = histogram_quantile(0.99, buckets)
    series = [{"series": f'ray_serve_http_request_latency_ms_bucket{{application="fruit",le="{"+Inf" if b == math.inf else b}"}}',
               "values": f"{count:g}"} for b, count in buckets.items()]
    test = {"evaluation_interval": "1m", "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [{
        "expr": "histogram_quantile(0.99, ray_serve_http_request_latency_ms_bucket)", "eval_time": "0m",
        "exp_samples": [{"labels": '{application="fruit"}', "value": ours}]}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
