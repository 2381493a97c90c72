"""bench.serve_bench's summary of several rounds: each figure, and each entry of a table of figures (CPU ms per
request by process), is the median over the rounds with the spread beside the figures, so the docs quote
medians and not one round."""
from __future__ import annotations

from bench.serve_bench import summarise


def test_figures_and_per_process_tables_are_medians_over_the_rounds():
    rounds = [{"stack": {"rps": rps, "cpu_ms_per_request": {"replica": cpu, **extra}}, "ratios": {"vs": ratio}}
              for rps, cpu, ratio, extra in ((100.0, 0.5, 0.2, {}), (300.0, 0.1, 0.1, {"haproxy": 0.04}),
                                             (200.0, 0.3, 0.3, {"haproxy": 0.06}))]
    out = summarise(rounds)
    assert out["stack"]["rps"] == 200.0 and out["stack"]["rps_range"] == [100.0, 300.0]
    assert out["stack"]["cpu_ms_per_request"] == {"replica": 0.3, "haproxy": 0.05}  # a process one round lacks
    assert out["ratios"] == {"vs": 0.2, "vs_range": [0.1, 0.3]}
    assert out["rounds"] == rounds
