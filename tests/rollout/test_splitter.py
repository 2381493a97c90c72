"""The rollout splitter in-process, its versions stand-in HTTP servers on 127.0.0.1: it sends the step's share
to the new version and counts both, and given the gate's error rate it cuts the new version off at the failure
that breaches it, so a bad version's failures stop there rather than when the gate's rollback arrives. The
real-Ray path is tests/local/test_gated_rollout.py."""
from __future__ import annotations

import asyncio
import json

import pytest

from rayserve_pulumi.rollout import splitter
from tests.helpers import free_port, stand_in_http


@pytest.fixture()
def serve_on_this_host():
    """Serve's ingress on this host as the splitter sees it: the previous version answers "old", the new one
    fails every request with a 500."""
    def answer(method: str, path: str):
        return (500, {"error": "injected"}) if path.startswith(splitter.hidden_route("next", "/echo")) else (200, "old")

    with stand_in_http("127.0.0.1", free_port(), answer) as url:
        yield url


def _splitter(base_url: str, **thresholds):
    """The deployment's class, built with what splitter.app hands it from the Serve config's args."""
    return splitter._build().func_or_class(base_url, ["/echo"], thresholds.get("max_error_rate"),
                                            thresholds.get("min_requests", 1))


async def _post(target, path: str, headers: dict | None = None):
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": b'"x"', "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    return await target(Request(scope, receive))


def _run(base_url: str, requests: int, **thresholds) -> tuple[list[int], dict]:
    async def main():
        s = _splitter(base_url, **thresholds)
        s.reconfigure({"next_percent": 100})
        statuses = [(await _post(s, "/echo")).status_code for _ in range(requests)]
        stats = json.loads((await _post(s, "/echo", {splitter.STATS_HEADER: "stats"})).body)
        await s._session.close()
        return statuses, stats

    return asyncio.run(main())


def test_the_failure_that_breaches_the_error_rate_cuts_the_new_version_off(serve_on_this_host):
    statuses, stats = _run(serve_on_this_host, 20, max_error_rate=0.01, min_requests=50)
    assert statuses == [500] + [200] * 19  # one failure among the 50 judged breaches 1 %: the rest go to "old"
    assert stats["tripped"] is True and stats["next_percent"] == 100
    assert (stats["next"]["requests"], stats["next"]["errors"]) == (1, 1)
    assert (stats["previous"]["requests"], stats["previous"]["errors"]) == (19, 0)


def test_failures_within_the_error_rate_keep_the_new_version_on_its_share(serve_on_this_host):
    statuses, stats = _run(serve_on_this_host, 4, max_error_rate=0.5, min_requests=10)  # up to 5 of 10
    assert statuses == [500] * 4 and stats["tripped"] is False


def test_without_a_threshold_the_splitter_only_counts(serve_on_this_host):
    statuses, stats = _run(serve_on_this_host, 5)
    assert statuses == [500] * 5 and stats["tripped"] is False and stats["next"]["errors"] == 5


def test_a_version_is_timed_on_the_sending_it_answered_not_on_the_wait_for_its_route(monkeypatch):
    """After a route move Serve's ingress answers 404 for the hidden route until it routes it, and the splitter
    sends the request again: that wait is the rollout's, so the previous version's latency, which the gate
    holds the new one's against, is its own answer's, not the route moves'. The splitter's clock is one that
    only the stand-in moves (a second per unrouted sending, nothing for the answer), so what it records does not
    depend on how busy this machine is."""
    import threading

    lock = threading.Lock()
    now, sendings = [0.0], []
    monkeypatch.setattr(splitter, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: now[0])}))

    def answer(method: str, path: str):
        with lock:  # Serve routes the hidden route from the fourth sending on; each before it waited a second
            sendings.append(path)
            if len(sendings) <= 3:
                now[0] += 1.0
                return 404, f"Path '{path}' not found. Ping http://.../-/routes for available routes.".encode()
        return 200, "old"

    with stand_in_http("127.0.0.1", free_port(), answer) as url:
        async def main():
            s = _splitter(url)  # next_percent 0: the previous version takes it
            status = (await _post(s, "/echo")).status_code
            stats = json.loads((await _post(s, "/echo", {splitter.STATS_HEADER: "stats"})).body)
            await s._session.close()
            return status, stats

        status, stats = asyncio.run(main())
    # it waited for the route, sending again (the hidden route, then the application's own, in turn)
    assert status == 200 and len(sendings) == 4, (status, sendings)
    previous = stats["previous"]
    assert (previous["requests"], previous["errors"]) == (1, 0)
    # timed on its answer (no time on this clock), not on the three seconds before it: in the first bucket
    assert previous["buckets"][splitter.BUCKET_KEYS[0]] == 1, previous["buckets"]
    assert list(previous["buckets"]) == [f"{b:g}" for b in splitter.BUCKETS_MS]  # the gate's float(bound) reads each
