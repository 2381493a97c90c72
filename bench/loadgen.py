"""A bounded HTTP load generator for loopback targets only (tests and benchmarks).

N threads POST the same JSON body until `duration_s` passes, `finish_in` ends it sooner or `max_requests`
is reached, and record each request's latency and outcome; each at most `rate` requests a second when given
(a paced load finds the same failures at a fraction of the CPU that a saturating one takes from the server it
tests and from whatever runs beside it). It refuses any host outside 127.0.0.0/8 / ::1.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import math
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


def assert_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load is only ever sent to loopback addresses, not {host!r}")


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: dict[str, str] = field(default_factory=dict)  # error kind -> the first such answer's body
    wall_s: float = 0.0
    failure_times: list[float] = field(default_factory=list)  # time.monotonic() when each failed request ended
    failure_starts: list[float] = field(default_factory=list)  # ... and when it was sent
    failure_kinds: list[str] = field(default_factory=list)  # ... and what it failed with

    @property
    def rps(self) -> float:
        return self.sent / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1] if len(self.latencies_s) > 1 else self.latencies_s[0]

    def summary(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "rps": round(self.rps, 1),
                "p50_ms": round(self.percentile(50) * 1000, 2), "p99_ms": round(self.percentile(99) * 1000, 2),
                "errors": dict(self.errors), **({"error_samples": dict(self.error_samples)} if self.error_samples else {})}


class Load:
    """Start with `with Load(url, body) as load:`; the result is in `load.result` after the block."""

    def __init__(self, url: str, body, *, connections: int = 16, duration_s: float = 20.0,
                 max_requests: int = 200_000, timeout_s: float = 30.0, check=None, rate: float | None = None):
        assert_loopback(url)
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number of requests a second above 0, not {rate!r}")
        self._interval = 1 / rate if rate else 0.0  # between one connection's request starts
        self.url, self.data = url, json.dumps(body).encode()
        self.connections, self.duration_s, self.max_requests, self.timeout_s = connections, duration_s, max_requests, timeout_s
        self.check = check  # optional predicate on the decoded answer; False counts as a failure
        self.result = LoadResult()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._answered = threading.Condition(self._lock)  # notified on every answer that passed
        self.answered = 0
        self._threads: list[threading.Thread] = []
        self._deadline = float("inf")

    def _one(self) -> tuple[bool, str]:
        req = urllib.request.Request(self.url, data=self.data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                answer = json.loads(resp.read())
            if self.check is not None and not self.check(answer):
                return False, f"unexpected answer {answer!r}"
            return True, ""
        except urllib.error.HTTPError as exc:
            kind = f"HTTP {exc.code}"
            if kind not in self.result.error_samples:  # what the first of its kind said, for the report
                try:
                    said = exc.read(200).decode(errors="replace")
                except (OSError, http.client.HTTPException) as cut:  # a server that died mid-answer
                    said = f"(its body was cut off: {type(cut).__name__})"
                self.result.error_samples[kind] = said + \
                    "".join(f" [{k}: {v}]" for k, v in exc.headers.items() if k.lower().startswith("x-"))
            return False, kind
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            return False, type(exc).__name__

    def _worker(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self.result.sent >= self.max_requests:
                    return
                self.result.sent += 1
            start, sent_at = time.perf_counter(), time.monotonic()
            ok, err = self._one()
            elapsed = time.perf_counter() - start
            with self._lock:
                self.result.latencies_s.append(elapsed)
                if ok:
                    self.answered += 1
                    self._answered.notify_all()
                else:
                    self.result.failed += 1
                    self.result.errors[err] = self.result.errors.get(err, 0) + 1
                    self.result.failure_times.append(time.monotonic())
                    self.result.failure_starts.append(sent_at)
                    self.result.failure_kinds.append(err)
            pause = 0.05 if not ok else 0.0  # a refused connection fails at once: do not spin on it
            pause = max(pause, self._interval - (time.perf_counter() - start))
            if pause > 0 and self._stop.wait(pause):
                return

    def __enter__(self) -> "Load":
        self._start = time.monotonic()
        self._deadline = self._start + self.duration_s
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.connections)]
        for t in self._threads:
            t.start()
        return self

    def wait_answered(self, count: int, timeout_s: float = 60) -> None:
        """Block until `count` requests have been answered as checked (the load is flowing), or fail."""
        with self._answered:
            if not self._answered.wait_for(lambda: self.answered >= count, timeout_s):
                raise TimeoutError(f"{self.answered} of {count} requests answered within {timeout_s:.0f} s")

    def finish_in(self, seconds: float) -> None:
        """End the load `seconds` from now (sooner than duration_s); requests in flight still complete."""
        self._deadline = min(self._deadline, time.monotonic() + seconds)

    def wait(self) -> LoadResult:
        for t in self._threads:
            t.join()
        self.result.wall_s = time.monotonic() - self._start
        return self.result

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            self._stop.set()
        self.wait()


def run(url: str, body, **kwargs) -> LoadResult:
    with Load(url, body, **kwargs) as load:
        pass
    return load.result
