"""bench.wrk reads wrk's `--latency` report: percentiles in every unit wrk prints (it pads seconds with a
trailing space), and a report without them is refused by name instead of a KeyError."""
from __future__ import annotations

import subprocess

import pytest

from bench import wrk

REPORT = """Running 3s test @ http://127.0.0.1:20857/fruit
  2 threads and 16 connections
  Latency Distribution
     50%  544.22ms
     75%  731.87ms
     90%  919.81ms
     99%    1.11s{pad}
  69 requests in 3.04s, 13.21KB read
  Non-2xx or 3xx responses: 2
Requests/sec:     22.71
"""


def _wrk_prints(monkeypatch, out: str) -> None:
    monkeypatch.setattr(wrk.shutil, "which", lambda name: "/usr/bin/wrk")
    monkeypatch.setattr(wrk.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, out, ""))


@pytest.mark.parametrize("pad", [" ", ""])
def test_percentiles_in_seconds_with_wrks_trailing_space_are_read(monkeypatch, pad):
    _wrk_prints(monkeypatch, REPORT.format(pad=pad))
    report = wrk.run("http://127.0.0.1:1/fruit", ["MANGO", 1], seconds=3)
    assert (report["p50_ms"], report["p99_ms"], report["rps"], report["requests"], report["non_2xx"]) == \
        (544.22, 1110.0, 22.71, 69, 2)


def test_a_report_without_a_latency_distribution_is_refused_by_name(monkeypatch):
    _wrk_prints(monkeypatch, "Running 3s test\nunable to connect to 127.0.0.1:1 Connection refused\n")
    with pytest.raises(RuntimeError, match="wrk printed no latency distribution"):
        wrk.run("http://127.0.0.1:1/fruit", ["MANGO", 1], seconds=3)
