"""A stepped rollout's route moves wait for Serve's ingress on every node, not only this host's: on a VM the
balancer sends requests to each node's proxy, and each learns a route change on its own. Serve's ingresses
are stand-ins answering `/-/routes` on 127.0.0.1 (this host, the head) and 127.0.0.2 (a worker node) on one
port, as two nodes' proxies listen on one Serve port; the dashboard's proxy list is Serve's details document.
A real cluster of several nodes is not run here (one machine)."""
from __future__ import annotations

import threading
import time

import pytest

from rayserve_pulumi.node_agent import ray_ops
from rayserve_pulumi.rollout import gate
from rayserve_pulumi.rollout.stepped import Stepped
from tests.helpers import free_port, stand_in_http

OLD = {"/echo": "echo", "/": "rayserve--rollout"}
NEW = {"/_rollout/previous/echo": "echo", "/": "rayserve--rollout"}
CONFIG = {"applications": [{"name": n, "route_prefix": r} for r, n in NEW.items()]}


class _Ingress:
    """What one node's ingress answers to `/-/routes`: `routes`, counting the requests for it."""

    def __init__(self, routes: dict):
        self.routes, self.asked = routes, 0

    def __call__(self, method: str, path: str):
        self.asked += 1
        return 200, self.routes


@pytest.fixture()
def nodes(monkeypatch):
    """The head's ingress (routing the new table already) and a worker node's (still the old one); Serve lists
    both proxies as healthy (the head's by the node's own IP, where it does not listen: it is asked through
    this host's address) and a third, on a node being drained, that nothing answers for."""
    port = free_port()
    head, worker = _Ingress(NEW), _Ingress(OLD)
    proxies = {"head": {"node_ip": "192.0.2.2", "status": "HEALTHY"},  # listening on the loopback address only
               "worker": {"node_ip": "127.0.0.2", "status": "HEALTHY"},
               "leaving": {"node_ip": "127.0.0.3", "status": "DRAINING"}}
    monkeypatch.setattr(ray_ops, "status", lambda dash: {"controller_info": {"node_id": "head"}, "proxies": proxies,
                                                         "applications": {}})
    rollout = Stepped("http://127.0.0.1:1", f"http://127.0.0.1:{port}", {"applications": []}, {"applications": []},
                      gate.Thresholds(), [100], lambda line: None)
    with stand_in_http("127.0.0.1", port, head), stand_in_http("127.0.0.2", port, worker):
        yield rollout, head, worker


def test_a_route_move_waits_until_the_worker_nodes_proxy_routes_it_too(nodes):
    rollout, head, worker = nodes
    assert rollout._ingresses() == [rollout.base_url, rollout.base_url.replace("127.0.0.1", "127.0.0.2")]
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (rollout._wait_routes(CONFIG, timeout=60), done.set()))
    waiter.start()
    while worker.asked < 3:  # the head's table was taken; the worker's old one keeps the move waiting
        assert waiter.is_alive() and not done.is_set()
        time.sleep(0.01)
    assert head.asked == 1 and not done.is_set()
    worker.routes = NEW  # the worker's proxy catches up
    waiter.join(timeout=30)
    assert done.is_set()


def test_a_worker_proxy_that_never_routes_the_move_fails_it_naming_that_node(nodes):
    rollout, _, worker = nodes
    with pytest.raises(TimeoutError, match=r"ingress at http://127\.0\.0\.2:\d+ did not route .* \(it routes "):
        rollout._wait_routes(CONFIG, timeout=2)  # room to ask again, on loaded cores too
    assert worker.asked >= 2


def test_with_no_proxy_listed_this_hosts_ingress_alone_is_asked(nodes, monkeypatch):
    rollout, head, worker = nodes
    monkeypatch.setattr(ray_ops, "status", lambda dash: {"applications": {}})
    rollout._wait_routes(CONFIG, timeout=10)
    assert (head.asked, worker.asked) == (1, 0)
