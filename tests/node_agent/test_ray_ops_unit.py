"""ray_ops against a stand-in dashboard (a local HTTP server): what a refused deploy reports."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from rayserve_pulumi.node_agent import ray_ops

TRACEBACK = """Traceback (most recent call last):
  File "/ray/dashboard/modules/serve/serve_head.py", line 175, in put_all_applications
    client = await serve_start_async(
ray.exceptions.RayTaskError(RuntimeError): ray::HAProxyManager.ready() (pid=1, ip=10.0.0.1)
  File "/ray/serve/_private/haproxy.py", line 2140, in _update_haproxy_backends
RuntimeError: HAProxy crashed during startup: cannot bind socket (Address already in use) for [0.0.0.0:9101]
"""


class _Dashboard(BaseHTTPRequestHandler):
    def do_GET(self):  # Serve's details: nothing deployed, nothing DELETING
        self._answer(200, b'{"applications": {}}')

    def do_PUT(self):  # the dashboard refusing the config, as Ray's does: a 500 with the traceback as its body
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(500, TRACEBACK.encode())

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def dashboard():
    server = HTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_deploy_is_one_line_with_the_cause(dashboard, monkeypatch):
    monkeypatch.setattr(ray_ops, "auth_token", lambda: None)
    with pytest.raises(ray_ops.ServeDeployError) as raised:
        ray_ops.deploy(dashboard, {"applications": []})
    message = str(raised.value)
    assert "\n" not in message
    assert message == ("Serve rejected the config: 500 RuntimeError: HAProxy crashed during startup: cannot bind "
                       "socket (Address already in use) for [0.0.0.0:9101]")
