"""The Serve application that takes the rolled-out applications' traffic while their new version takes it in steps.

It is deployed at `/`, under every application's own route (Serve routes a request to the longest route
prefix that matches), so moving an application to a route of its own (`/_rollout/previous<route>`) hands its
traffic to the splitter with no moment where nothing serves the route, and moving it back takes it again (an
application at `/` itself hands `/` over in one deploy: rollout.stepped). For
each request under a rolled-out route, the splitter picks the new version (`/_rollout/next<route>`) with
probability `next_percent` (its `user_config`, changed in place step by step), else the previous one, and
forwards it through Serve's own HTTP ingress on this host. It counts, per route and version, requests,
failures (5xx or no answer) and a latency histogram (of the sending the version answered: a request sent again
while its target route was not routable yet waited on the rollout, not on the version), cumulative, which the
rollout gate reads with a request under the route carrying `X-Rayserve-Rollout: stats`. Given the gate's
error-rate threshold, it also cuts a route's new version off itself, at the failure that breaches it
(`tripped`, in its counts): the gate, polling, would otherwise let a step's share of requests fail until its
rollback reaches the splitter. Why a splitter and not weights in a proxy: Serve routes one route to one
application, and neither its proxy nor its HAProxy ingress weighs two; this uses only Serve's public API.
"""
from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
import time
from typing import Optional
from urllib.parse import urlsplit

from rayserve_pulumi.rollout.gate import LATENCY_BUCKETS_MS, error_rate_breached

__all__ = ["STATS_HEADER", "BUCKETS_MS", "BUCKET_KEYS", "ROUTE_ROOT", "SPLITTER_ROUTE", "SPLITTER_PARKED",
           "SPLITTER_PATH", "hidden_route", "app"]

STATS_HEADER = "x-rayserve-rollout"  # value "stats": the counters as JSON instead of a forwarded request
NO_ROUTE = "no-route"  # this header value on the splitter's own 404: a target route not routable yet
FORWARDED = "forwarded"  # on a request the splitter sends to an application's own route
BUCKETS_MS = (*LATENCY_BUCKETS_MS, math.inf)
BUCKET_KEYS = tuple(f"{b:g}" for b in BUCKETS_MS)  # the buckets' names in the stats ("1.19", ..., "inf")
ROUTE_ROOT = "/_rollout"
ROUTE_WAIT_S = 10  # how long a request waits for its target route to become routable
SPLITTER_PATH = f"{ROUTE_ROOT}/splitter"  # with the stats header: what the splitter holds (no route is its own)
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade",
                "proxy-connection", "te", "trailer"}


def hidden_route(which: str, route: str) -> str:
    """Where version `which` ("previous" or "next") of the application at `route` serves during a rollout. The
    application at `/` gets a route that is no other's prefix: a request for another's hidden route that Serve
    no longer routes must never reach it."""
    return f"{ROUTE_ROOT}/{which}{'-root' if route == '/' else route}"


SPLITTER_ROUTE = "/"  # under every route: see the module's docstring
# where the splitter waits while a rolled-out application holds `/`: under it fall the hidden routes Serve no
# longer routes, which it answers with NO_ROUTE (never the application at `/`)
SPLITTER_PARKED = ROUTE_ROOT


def _empty() -> dict:
    """One version's counters: requests, failures, and requests per bucket (each in its own bucket only, so a
    request counts once; `_stats` makes them cumulative)."""
    return {"requests": 0, "errors": 0, "in_bucket": [0] * len(BUCKETS_MS)}


def _stats(counters: dict) -> dict:
    """The counters as the gate reads them: each bucket's count of the requests at or under its bound, as a
    Prometheus histogram has it."""
    return {"requests": counters["requests"], "errors": counters["errors"],
            "buckets": dict(zip(BUCKET_KEYS, itertools.accumulate(counters["in_bucket"])))}


def _build():
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    @serve.deployment(max_ongoing_requests=512, ray_actor_options={"num_cpus": 0})
    class Splitter:
        """Forwards the application's requests to the previous or the next version, and counts both."""

        def __init__(self, base_url: str, routes: list[str], max_error_rate: Optional[float] = None,
                     min_requests: int = 1):
            base = self.base = base_url.rstrip("/")
            self.max_error_rate, self.min_requests = max_error_rate, min_requests
            self.tripped = {r: False for r in routes}  # the new version cut off: its failures breached the rate
            # longest first: the route a path falls under, as Serve's proxy picks it
            self.routes = sorted(routes, key=len, reverse=True)
            self.targets = {r: {w: base + hidden_route(w, r) for w in ("previous", "next")} for r in self.routes}
            self.stats = {r: {"previous": _empty(), "next": _empty()} for r in self.routes}
            self.next_percent = 0.0
            self.in_flight, self.received = 0, 0
            self.in_flight_by_route = {r: 0 for r in self.routes}
            self._session = None

        def _route(self, path: str) -> Optional[str]:
            """The rolled-out route `path` falls under. None under ROUTE_ROOT: that is a request this splitter
            sent to a version's hidden route before Serve's proxy routed it (never one for an application at
            `/`, whose version would get a path it does not serve)."""
            if path == ROUTE_ROOT or path.startswith(ROUTE_ROOT + "/"):
                return None
            return next((r for r in self.routes if r == "/" or path == r or path.startswith(r + "/")), None)

        def reconfigure(self, config: dict) -> None:
            percent = config.get("next_percent", 0)
            if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
                raise ValueError(f"next_percent must be a number from 0 to 100, not {percent!r}")
            self.next_percent = float(percent)

        def _record(self, route: str, which: str, failed: bool, elapsed_ms: float) -> None:
            counters = self.stats[route][which]
            counters["requests"] += 1
            counters["errors"] += int(failed)
            counters["in_bucket"][bisect.bisect_left(BUCKETS_MS, elapsed_ms)] += 1
            if which == "next" and failed and self.max_error_rate is not None and error_rate_breached(
                    counters["errors"], counters["requests"], self.max_error_rate, self.min_requests):
                self.tripped[route] = True

        async def __call__(self, request: Request):
            path = request.url.path
            if path == SPLITTER_PATH and request.headers.get(STATS_HEADER) == "stats":
                return JSONResponse({"in_flight": self.in_flight, "received": self.received,
                                     "in_flight_by_route": self.in_flight_by_route})
            route = self._route(path)
            self.received += 1
            self.in_flight += 1
            if route is not None:
                self.in_flight_by_route[route] += 1
            try:
                return await self._forward(request, path, route)
            finally:
                self.in_flight -= 1
                if route is not None:
                    self.in_flight_by_route[route] -= 1

        async def _forward(self, request: Request, path: str, route: Optional[str]):
            if route is None or request.headers.get(STATS_HEADER) == FORWARDED:  # nothing to forward it to
                return Response("Not Found", status_code=404, headers={STATS_HEADER: NO_ROUTE})
            if request.headers.get(STATS_HEADER) == "stats":
                return JSONResponse({"route": route, "next_percent": self.next_percent,
                                     "tripped": self.tripped[route],
                                     **{which: _stats(c) for which, c in self.stats[route].items()}})
            import aiohttp

            if self._session is None:
                # a new connection per request: a kept-alive one stays with the HAProxy process that accepted it,
                # which after Serve reloads HAProxy (a route moved) still routes by the previous table
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                                      connector=aiohttp.TCPConnector(force_close=True))
            which = "next" if not self.tripped[route] and random.random() * 100 < self.next_percent else "previous"
            rest = path[len(route):] if route != "/" else path
            query = f"?{request.url.query}" if request.url.query else ""
            # the previous version may be back at the application's own route (a rollback hands it back): tried
            # second, marked so that while the route is still this splitter's, the splitter does not forward it
            urls = [self.targets[route][which] + rest + query]
            if which == "previous":
                urls.append(self.base + route.rstrip("/") + rest + query)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            body = await request.body()
            deadline = time.perf_counter() + ROUTE_WAIT_S
            attempt = 0
            while True:
                own = attempt % len(urls) == 1
                url = urls[attempt % len(urls)]
                marked = {**headers, STATS_HEADER: FORWARDED} if own else headers
                # the version's latency is its answer's to this sending: the sendings before, which no
                # application saw, waited on the rollout's own route moves, not on either version
                start = time.perf_counter()
                try:
                    async with self._session.request(request.method, url, data=body, headers=marked) as answer:
                        content, status = await answer.read(), answer.status
                        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
                        # the splitter's own 404, or Serve's for a path no route matches (its proxy's route table
                        # can lag a moved route): no application saw the request
                        unrouted = answer.headers.get(STATS_HEADER) == NO_ROUTE or (
                            status == 404 and content.startswith(f"Path '{urlsplit(url).path}' not found.".encode()))
                except Exception as exc:  # the version did not answer: a failure of that version
                    self._record(route, which, True, (time.perf_counter() - start) * 1000)
                    return Response(f"{which} version did not answer: {type(exc).__name__}", status_code=502)
                # Serve's ingress does not route the target yet (a route just moved): no application saw the
                # request, so it is sent again
                if not unrouted or time.perf_counter() > deadline:
                    break
                attempt += 1
                if attempt % len(urls) == 0:
                    await asyncio.sleep(0.05)
            self._record(route, which, status >= 500 or unrouted, (time.perf_counter() - start) * 1000)
            return Response(content, status_code=status, headers=out)

    return Splitter


def app(args: Optional[dict] = None):
    """Serve's application builder: `args` = {"base_url": Serve on this host, "routes": the rolled-out
    applications' routes, and optionally the gate's "max_error_rate" and "min_requests"}."""
    args = dict(args or {})
    return _build().bind(args["base_url"], list(args["routes"]), args.get("max_error_rate"),
                         int(args.get("min_requests", 1)))
