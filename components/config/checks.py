"""Checks that need the whole stack: ports that collide, pods and Ray actors that cannot fit where they
are placed, GPU requests on a cluster with no GPU, and what an SSM parameter can hold. What differs by
platform comes from the platform's description (registry.platform): its reserved ports, its nodes, its
own checks.

Each check returns error lines (empty when fine) so that every error of a stack is reported at once.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

from rayserve_pulumi.config.app_code import AppCode
from rayserve_pulumi.config.aws import SSM_ADVANCED_LIMIT
from rayserve_pulumi.config.kubernetes import parse_quantity
from rayserve_pulumi.config.serve import deployment_resources, grpc_port, serve_port
from rayserve_pulumi.aws.eks.settings import NodeGroup, Nodes
from rayserve_pulumi.config.stack import PodResources, StackConfig
from rayserve_pulumi.constants import DIRECT_INGRESS_GRPC_PORTS, DIRECT_INGRESS_HTTP_PORTS, WORKER_PORTS
from rayserve_pulumi.kuberay.settings import AUTOSCALER_RESOURCES
from rayserve_pulumi.registry import platform

__all__ = [
    "ray_port_ranges", "range_error", "serve_port_errors", "eks_fit_errors", "actor_fit_errors", "ssm_errors",
    "value_errors", "requirement_errors", "stack_errors",
]


def ray_port_ranges(direct_ingress: bool = True) -> dict[str, range]:
    """The port ranges Ray's own processes bind from, by name: a listener of ours in one fails some day."""
    ranges = {"Ray's worker port range": WORKER_PORTS}
    if direct_ingress:
        ranges["Serve's direct-ingress replica HTTP ports"] = DIRECT_INGRESS_HTTP_PORTS
        ranges["Serve's direct-ingress replica gRPC ports"] = DIRECT_INGRESS_GRPC_PORTS
    return ranges


def range_error(where: str, port: int, ranges: dict[str, range]) -> Optional[str]:
    """`where: port lies in <range>` for the first of `ranges` that holds `port`."""
    for name, ports in ranges.items():
        if port in ports:
            return f"{where}: {port} lies in {name} {ports.start}-{ports.stop - 1}; use a port outside it"
    return None


def serve_port_errors(serve_config: dict, reserved: dict[int, str], direct_ingress: bool = True) -> list[str]:
    """Serve's HTTP and gRPC ports against each other, the platform's `reserved` ports and the ranges Ray binds
    from (direct ingress' counted unless the caller knows it is off)."""
    errors, ranges = [], ray_port_ranges(direct_ingress)
    ports = {"http_options.port": serve_port(serve_config)}
    if (grpc := grpc_port(serve_config)) is not None:
        ports["grpc_options.port"] = grpc
        if grpc == ports["http_options.port"]:
            errors.append(f"serve config grpc_options.port: {grpc} is also http_options.port; give each its own port")
    for key, port in ports.items():
        if port in reserved:
            errors.append(f"serve config {key}: {port} collides with the Ray {reserved[port]} port; use a port other "
                          f"than {sorted(reserved)}")
        elif error := range_error(f"serve config {key}", port, ranges):
            errors.append(error + " (Serve's default is 8000)")
    return errors


def _fits(where: str, pod: PodResources, group: Nodes, sidecar: tuple[int, float] = (0, 0.0)) -> Optional[str]:
    """`sidecar`: (millicpu, MiB) the pod's other containers request (the head's autoscaler)."""
    cpu, memory, gpus = group.pod_room()
    millicpu, memory_mib = pod.millicpu + sidecar[0], pod.memory_mib + sidecar[1]
    if millicpu <= cpu and memory_mib <= memory and pod.gpu <= gpus:
        return None
    plus = f" with the autoscaler sidecar's {sidecar[0]}m and {sidecar[1]:.0f} MiB" if sidecar[0] else ""
    where_to = (f"a node of group {group.name!r} ({', '.join(group.instance_types)})" if isinstance(group, NodeGroup)
                else f"node pool {group.name!r} within its limits (cpu {group.limits.cpu}, memory_gib "
                     f"{group.limits.memory_gib}, gpus {group.limits.gpus})")
    return (f"rayserve:ray_service.{where}: asks for cpu {pod.cpu} ({millicpu}m), memory {pod.memory} "
            f"({memory_mib:.0f} MiB){plus} and {pod.gpu} GPU(s), but {where_to} can give a pod at most {cpu}m, "
            f"{memory} MiB and {gpus} GPU(s) after EKS' reservations; ask for less, raise the limits or place it on "
            "larger nodes")


def eks_fit_errors(cfg: StackConfig) -> list[str]:
    """Every Ray pod fits a node of the group it is placed on (or of some CPU group, when unplaced)."""
    rs, eks = cfg.ray_service, cfg.eks
    requests = AUTOSCALER_RESOURCES["requests"]
    autoscaler = (int(parse_quantity(requests["cpu"]) * 1000), float(parse_quantity(requests["memory"]) / 2**20)) \
        if rs.enable_autoscaling else (0, 0.0)
    errors = []
    for where, pod in [("head", rs.head), *((f"worker_groups[{g.name}]", g) for g in rs.worker_groups)]:
        groups = [eks.group(pod.node_group)] if pod.node_group else eks.placements()
        sidecar = autoscaler if pod is rs.head else (0, 0.0)
        verdicts = [_fits(where, pod, g, sidecar) for g in groups if g is not None]
        if verdicts and all(verdicts):
            errors.append(verdicts[0])
    return errors


def actor_fit_errors(cfg: StackConfig, serve_config: dict, apps: dict) -> list[str]:
    """Every Serve replica's num_cpus and num_gpus fit on some node of the cluster (`apps`: the code's facts)."""
    nodes = platform(cfg.platform).nodes(cfg)
    most_cpus, most_gpus = max(n[1] for n in nodes), max(n[2] for n in nodes)
    errors = []
    for where, cpus, gpus in deployment_resources(serve_config, apps):
        if gpus > 0 and most_gpus == 0:
            errors.append(f"{where}.num_gpus: {gpus:g} GPU(s) asked, but no node of this {cfg.platform} cluster has a "
                          f"GPU ({', '.join(n[0] for n in nodes)}); add a GPU group or set num_gpus to 0")
        elif gpus > most_gpus:
            errors.append(f"{where}.num_gpus: {gpus:g} GPUs asked; the largest node has {most_gpus:g}")
        if cpus > most_cpus:
            errors.append(f"{where}.num_cpus: {cpus:g} CPUs asked; the largest node has {most_cpus:g} "
                          f"({', '.join(f'{n[0]}: {n[1]:g}' for n in nodes)})")
    return errors


def ssm_errors(cfg: StackConfig, serve_config: dict) -> list[str]:
    size = len(json.dumps(serve_config, sort_keys=True).encode())
    if size > SSM_ADVANCED_LIMIT:
        return [f"rayserve:serve: the Serve config is {size} bytes as JSON; the VM platform keeps it in an SSM "
                f"parameter, which holds at most {SSM_ADVANCED_LIMIT} bytes; deploy fewer applications or overrides"]
    return []


def value_errors(cfg: StackConfig, serve_config: dict) -> list[str]:
    """The cross-checks that read the Serve config's values, user_config included (config.verdict runs them
    again when only user_config values changed): the platform's."""
    return platform(cfg.platform).value_errors(cfg, serve_config)


def requirement_errors(code: AppCode) -> list[str]:
    """Every requirement of the apps' requirements file is installed in this environment, at a version it
    accepts (the local platform runs the apps with this interpreter; nothing is installed for it)."""
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    if code.requirements is None or code.bundled:
        return []
    errors = []
    where = f"rayserve:serve.requirements: {code.requirements}"
    for number, raw in enumerate(code.requirements.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue  # pip options (-r, --index-url) are the image build's
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            errors.append(f"{where} line {number}: {line!r} is not a requirement: {exc}")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            errors.append(f"{where} line {number}: {req.name} is not installed in this environment "
                          f"({sys.executable}); the local platform runs the apps here: pip install {line!r}")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            errors.append(f"{where} line {number}: {req.name} {have} is installed, but the apps need {line!r}")
    return errors


def stack_errors(cfg: StackConfig, serve_config: dict, apps: dict, code: AppCode) -> list[str]:
    """Every cross-check of a stack: the shared ones and its platform's (`apps`: the code check's facts)."""
    spec = platform(cfg.platform)
    return (serve_port_errors(serve_config, spec.reserved_ports(cfg), cfg.serve.direct_ingress)
            + actor_fit_errors(cfg, serve_config, apps) + spec.stack_errors(cfg, serve_config, apps, code)
            + spec.value_errors(cfg, serve_config))
