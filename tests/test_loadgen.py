"""The load generator the reliability tests rely on: loopback only, the load starts before an action is
taken (wait_answered) and ends when told (finish_in), failures counted with their times."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import Load


class _Echo(BaseHTTPRequestHandler):
    fail = threading.Event()

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        code = 503 if self.fail.is_set() else 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Echo.fail.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_load_refuses_any_host_but_loopback():
    with pytest.raises(ValueError, match="loopback"):
        Load("http://10.0.0.1:8000/", [1])


def test_wait_answered_then_finish_in_ends_the_load_early_and_counts_failures_after(echo):
    with Load(echo, ["MANGO", 1], connections=4, duration_s=120, check=lambda a: a == ["MANGO", 1]) as load:
        load.wait_answered(4, timeout_s=30)
        assert load.answered >= 4 and load.result.failed == 0
        _Echo.fail.set()
        failing_from = time.monotonic()
        load.finish_in(0.5)
    result = load.result
    assert result.wall_s < 60  # ended by finish_in, far before duration_s
    assert result.failed > 0 and result.errors.get("HTTP 503") == result.failed
    assert all(t >= failing_from for t in result.failure_times)
    assert json.dumps(result.summary())  # the report the tests print is plain JSON


def test_wait_answered_fails_when_nothing_answers_as_checked(echo):
    with Load(echo, [1], connections=2, duration_s=30, check=lambda a: a == "never") as load:
        with pytest.raises(TimeoutError, match="0 of 2 requests answered"):
            load.wait_answered(2, timeout_s=1)
        load.finish_in(0)


class _CutOff(BaseHTTPRequestHandler):
    """Answers 500 with a chunked body, and closes the connection before the first chunk: a server killed
    mid-answer (a Ray head stopped under load)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_an_error_whose_body_is_cut_off_is_counted_and_every_connection_keeps_sending():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutOff)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors: list = []
    previous, threading.excepthook = threading.excepthook, errors.append  # a connection's thread that died
    try:
        with Load(f"http://127.0.0.1:{server.server_address[1]}/", [1], connections=2, max_requests=20) as load:
            load.finish_in(30)
    finally:
        threading.excepthook = previous
        server.shutdown()
        server.server_close()
    assert errors == []
    assert load.result.failed == load.result.sent == 20 and load.result.errors == {"HTTP 500": 20}
    assert load.result.error_samples["HTTP 500"].startswith("(its body was cut off: IncompleteRead)")


def test_a_paced_load_sends_no_more_than_its_rate_on_any_connection(echo):
    """Each connection waits out its interval, answered or not: a slower machine only sends fewer."""
    with Load(echo, [1], connections=2, duration_s=1.5, rate=10) as load:
        load.wait_answered(2, timeout_s=30)
    result = load.result
    assert result.failed == 0 and result.sent >= 2
    assert result.sent <= 2 * (10 * result.wall_s + 1), result.summary()  # unpaced, this echo answers hundreds


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_a_rate_that_is_not_a_finite_positive_number_is_refused(rate):
    with pytest.raises(ValueError, match="rate must be a finite number"):
        Load("http://127.0.0.1:9/", [1], rate=rate)
