"""rollout.ingress_hold on a cluster's other hosts (a VM's workers, each with its own HAProxy ingress): their
admin sockets are on their hosts, so a Ray actor pinned to each node (Ray's public NodeAffinitySchedulingStrategy,
no CPU) holds and later releases there, and keeps what it holds through that HAProxy's reloads meanwhile
(ingress_hold.Keeper, in the actor's process), as the head's own holds are kept. The rollout connects to the
cluster as a Ray driver for it only when such a node serves, and disconnects at `close`, which ends the actors.
A node that cannot be reached is not held, said in one line."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

from rayserve_pulumi.rollout import gate, ingress_hold

__all__ = ["Remote"]

TASK_TIMEOUT_S = 60  # a node's hold waits for its requests in flight (ingress_hold.DRAIN_TIMEOUT_S) and more


class _NodeHolds:
    """On one node, for one rollout: what it holds, each kept through HAProxy's reloads until released."""

    def __init__(self):
        self.holdings: dict[tuple, ingress_hold.Holding] = {}

    def hold(self, node_id: str, template: str, apps: list[str]) -> tuple[list[ingress_hold.Held], list[str]]:
        said: list[str] = []
        holding = ingress_hold.hold(ingress_hold.node_sockets(template, [node_id]), apps, said.append)
        if holding:
            self.holdings[tuple(holding)] = holding
        return list(holding), said

    def release(self, held: list[ingress_hold.Held], routes: Optional[Mapping[str, str]] = None) -> list[str]:
        said: list[str] = []
        ingress_hold.release(self.holdings.pop(tuple(held), held), said.append, routes)
        return said


class Remote:
    """Holds on other nodes, by node ID; `close` ends the nodes' actors and disconnects the driver it connected."""

    def __init__(self, report: Callable[[str], None], address: str = "auto"):
        self.report, self.address, self._connected = report, address, False
        self._actors: dict = {}  # node ID -> its _NodeHolds actor

    def _on(self, node_id: str, method: str, *args):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not ray.is_initialized():
            ray.init(address=self.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
            self._connected = True
        if node_id not in self._actors:
            self._actors[node_id] = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy=(
                NodeAffinitySchedulingStrategy(node_id, soft=False)))(_NodeHolds).remote()
        return ray.get(getattr(self._actors[node_id], method).remote(*args), timeout=TASK_TIMEOUT_S)

    def hold(self, node_ids: Iterable[str], template: str, apps: list[str]) -> dict[str, list[ingress_hold.Held]]:
        """Hold `apps` on each node's HAProxy (its admin socket at `template`'s place on that host)."""
        held: dict[str, list[ingress_hold.Held]] = {}
        for node in node_ids:
            try:
                servers, said = self._on(node, "hold", node, template, apps)
            except Exception as exc:  # the driver or the actor: one line, and the hand-over goes on
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
                said = self._on(node, "release", servers, routes)
            except Exception as exc:
                self.report(f"rollout: could not release node {node[:12]}'s HAProxy ({gate.cause(exc)}); "
                            "Serve's fallback proxy keeps serving those routes there")
                continue
            for line in said:
                self.report(f"{line} (node {node[:12]})")

    def close(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors.values():
                ray.kill(actor)  # its releases' keepers end with it: the rollout is over
            self._actors.clear()
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False
