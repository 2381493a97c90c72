"""rollout.ingress_hold on a cluster's other hosts (a VM's workers, each with its own HAProxy ingress): their
admin sockets are on their hosts, so a Ray task pinned to each node (Ray's public NodeAffinitySchedulingStrategy,
no CPU) holds and later releases there. The rollout connects to the cluster as a Ray driver for it only when
such a node serves, and disconnects at `close`. A node that cannot be reached is not held, said in one line."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

from rayserve_pulumi.rollout import gate, ingress_hold

__all__ = ["Remote"]

TASK_TIMEOUT_S = 60  # a node's hold waits for its requests in flight (ingress_hold.DRAIN_TIMEOUT_S) and more


def _hold_on_node(node_id: str, template: str, apps: list[str]) -> tuple[list[ingress_hold.Held], list[str]]:
    """Run on the node: its held servers and what it said (no Keeper: it would end with the task)."""
    said: list[str] = []
    return list(ingress_hold.hold(ingress_hold.node_sockets(template, [node_id]), apps, said.append, keep=False)), said


def _release_on_node(held: list[ingress_hold.Held], routes: Optional[Mapping[str, str]] = None) -> list[str]:
    said: list[str] = []
    ingress_hold.release(held, said.append, routes)
    return said


class Remote:
    """Holds on other nodes, by node ID; `close` disconnects the driver it connected."""

    def __init__(self, report: Callable[[str], None], address: str = "auto"):
        self.report, self.address, self._connected = report, address, False

    def _on(self, node_id: str, fn, *args):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not ray.is_initialized():
            ray.init(address=self.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
            self._connected = True
        task = ray.remote(num_cpus=0, max_retries=0,
                          scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))(fn)
        return ray.get(task.remote(*args), timeout=TASK_TIMEOUT_S)

    def hold(self, node_ids: Iterable[str], template: str, apps: list[str]) -> dict[str, list[ingress_hold.Held]]:
        """Hold `apps` on each node's HAProxy (its admin socket at `template`'s place on that host)."""
        held: dict[str, list[ingress_hold.Held]] = {}
        for node in node_ids:
            try:
                servers, said = self._on(node, _hold_on_node, node, template, apps)
            except Exception as exc:  # the driver or the task: one line, and the hand-over goes on
                self.report(f"rollout: could not hold node {node[:12]}'s HAProxy ({gate.cause(exc)})")
                continue
            for line in said:
                self.report(f"{line} (node {node[:12]})")
            if servers:
                held[node] = servers
        return held

    def release(self, held: dict[str, list[ingress_hold.Held]], routes: Optional[Mapping[str, str]] = None) -> None:
        """Release each node's held servers, as ingress_hold.release with `routes` (there, on that host)."""
        for node, servers in held.items():
            try:
                said = self._on(node, _release_on_node, servers, routes)
            except Exception as exc:
                self.report(f"rollout: could not release node {node[:12]}'s HAProxy ({gate.cause(exc)}); "
                            "Serve's fallback proxy keeps serving those routes there")
                continue
            for line in said:
                self.report(f"{line} (node {node[:12]})")

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False
