"""The instance-type catalogue (package data) and what a pod can really get on an EKS node.

EKS reserves CPU and memory for the kubelet and system (the AL2023 bootstrap's formula: 6% of the
first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest; 255 MiB + 11 MiB per pod the node
may run, plus the 100 MiB hard eviction threshold), and the add-on DaemonSets every node runs
(aws-node, kube-proxy, ebs-csi-node) request a little more: DAEMONSET_* below.
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import lru_cache

import yaml

__all__ = [
    "DAEMONSET_MILLICPU", "DAEMONSET_MEMORY_MIB", "EVICTION_MEMORY_MIB", "InstanceType", "catalogue",
    "instance_type",
]

DAEMONSET_MILLICPU = 150
DAEMONSET_MEMORY_MIB = 200
EVICTION_MEMORY_MIB = 100


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: int
    memory_mib: int
    gpus: int
    max_pods: int

    def reserved_millicpu(self) -> int:
        steps = [(1, 60), (1, 10), (2, 5), (float("inf"), 2.5)]  # (cores, millicores reserved per core)
        left, reserved = self.vcpu, 0.0
        for cores, per in steps:
            used = min(left, cores)
            reserved, left = reserved + used * per, left - used
        return int(reserved)

    @property
    def allocatable_millicpu(self) -> int:
        """Millicores a Ray pod can request on this node under EKS."""
        return self.vcpu * 1000 - self.reserved_millicpu() - DAEMONSET_MILLICPU

    @property
    def allocatable_memory_mib(self) -> int:
        """MiB a Ray pod can request on this node under EKS."""
        return self.memory_mib - (255 + 11 * self.max_pods) - EVICTION_MEMORY_MIB - DAEMONSET_MEMORY_MIB


@lru_cache(maxsize=1)
def catalogue() -> dict[str, InstanceType]:
    raw = yaml.safe_load(importlib.resources.files("rayserve_pulumi.config").joinpath("instance_types.yaml").read_text())
    return {name: InstanceType(name=name, **spec) for name, spec in raw.items()}


def instance_type(name: str) -> InstanceType:
    """The catalogue entry, or ValueError naming the catalogue (unknown types are never silently accepted)."""
    try:
        return catalogue()[name]
    except KeyError:
        raise ValueError(f"instance type {name!r} is not in the catalogue (rayserve_pulumi/config/instance_types.yaml), "
                         f"so what fits on it cannot be checked; known: {', '.join(sorted(catalogue()))}") from None
