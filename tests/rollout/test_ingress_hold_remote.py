"""rollout.ingress_hold_remote for real on one node: a Ray actor pinned to the node holds its HAProxy (the
binary Serve runs, laid out as in tests/rollout/test_ingress_hold.py), keeps it held through a reload there,
and releases it. On a VM the same actor runs on a worker's host; several hosts are not available here."""
from __future__ import annotations

import tempfile

import pytest

from rayserve_pulumi.rollout.ingress_hold_remote import Remote
from tests.rollout.test_ingress_hold import (_answer, _save_states, _take_over, _until_replica, haproxy_front,  # noqa: F401
                                            hap_dir)  # (a fixture)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def node_id():
    """A one-node Ray in this process (no dashboard): its node ID. Its sessions go to a temp dir of its own,
    removed afterwards, not Ray's default /tmp/ray, which would outlive the test (a path short enough for
    Ray's sockets, as the local heads' own temp dirs are)."""
    import ray

    with tempfile.TemporaryDirectory(prefix="ray-hold-", dir="/tmp") as temp_dir:
        ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False, _temp_dir=temp_dir)
        try:
            yield ray.get_runtime_context().get_node_id()
        finally:
            ray.shutdown()


def test_a_ray_actor_on_the_node_holds_its_haproxy_and_releases_it(node_id, tmp_path, hap_dir):
    said = []
    remote = Remote(said.append)
    with haproxy_front(tmp_path, hap_dir, node_id) as front:
        held = remote.hold([node_id], str(hap_dir / "admin.sock"), ["shop"])
        assert list(held) == [node_id] and [s[2] for s in held[node_id]] == ["SERVE_REPLICA_shop-Echo-a"], said
        assert [_answer(front["url"]) for _ in range(5)] == ["backup"] * 5
        remote.release(held)
        assert [_answer(front["url"]) for _ in range(5)] == ["replica"] * 5
        assert remote.hold([node_id], str(hap_dir / "admin.sock"), ["lonely"]) == {}
    assert said == [f"rollout: HAProxy at {front['socket']} has no backup server up for lonely's route (none); "
                    f"not holding it (node {node_id[:12]})"]
    remote.close()  # it connected no driver of its own (this process had one): nothing to shut down
    import ray

    assert ray.is_initialized()


def test_a_node_that_is_not_there_is_not_held(node_id):
    said = []
    remote = Remote(said.append)
    assert remote.hold(["ff" * 28], "/tmp/hap/admin.sock", ["shop"]) == {}
    assert len(said) == 1 and said[0].startswith(f"rollout: could not hold node {'ff' * 6}'s HAProxy ("), said


def test_a_nodes_hold_is_kept_through_a_reload_of_its_haproxy(node_id, tmp_path, hap_dir):
    """As on the head (test_ingress_hold): Ray's reload there saved the states before the hold and took over after."""
    said = []
    remote = Remote(said.append)
    with haproxy_front(tmp_path, hap_dir, node_id) as front:
        _save_states(front)
        held = remote.hold([node_id], str(hap_dir / "admin.sock"), ["shop"])
        new = _take_over(front)
        _until_replica(front["socket"], "MAINT", new)
        assert [_answer(front["url"]) for _ in range(3)] == ["backup"] * 3
        _save_states(front)
        remote.release(held)
        new = _take_over(front)
        _until_replica(front["socket"], "UP", new)
        assert [_answer(front["url"]) for _ in range(3)] == ["replica"] * 3
    remote.close()
    assert said == []
