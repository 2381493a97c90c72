"""wrk (Debian's C load generator) against a loopback URL: POST a JSON body for a bounded time, parse
requests/s and latency percentiles from its `--latency` report."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.loadgen import assert_loopback

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(value) * UNITS[unit], 2)


def run(url: str, body, seconds: float = 10, connections: int = 16, threads: int = 2) -> dict:
    """One wrk run; refuses anything but 127.0.0.0/8 and ::1."""
    assert_loopback(url)
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: bash bench/setup.sh")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = {json.dumps(json.dumps(body))}\n")
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s",
                              script.name, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        Path(script.name).unlink()
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)[ \t]*$", out, re.M))  # wrk pads "1.11s "
    if "50" not in pct or "99" not in pct:
        raise RuntimeError(f"wrk printed no latency distribution for {url}: {out[-1500:]!r}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}
