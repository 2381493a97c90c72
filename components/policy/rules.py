"""The rayserve policy pack's rules. Each `check_*` takes (resource_type, props) and returns violations;
`POLICIES` wraps them as pulumi-policy ResourceValidationPolicy objects (mandatory)."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from rayserve_pulumi.config.images import image_is_pinned
from rayserve_pulumi.constants import INTERNAL_PORTS

Props = Mapping[str, Any]
RAY_PRIVATE_PORTS = INTERNAL_PORTS
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
SECRET_NAME = re.compile(r"password|secret|token|api[_-]?key", re.I)


def _covers(from_port, to_port, protocol) -> list[int]:
    if str(protocol) in ("-1", "all"):
        return sorted(RAY_PRIVATE_PORTS)
    lo, hi = int(from_port or 0), int(to_port if to_port is not None else from_port or 0)
    return [p for p in RAY_PRIVATE_PORTS if lo <= p <= hi]


def check_no_public_ray_ports(resource_type: str, props: Props) -> list[str]:
    """Dashboard, GCS and Ray client ports are never open to 0.0.0.0/0 (or ::/0)."""
    rules: list[tuple[Iterable[str], Any, Any, Any]] = []
    if resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules.append(([props.get("cidrIpv4"), props.get("cidrIpv6")], props.get("fromPort"), props.get("toPort"),
                      props.get("ipProtocol")))
    elif resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        rules.append(([*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])],
                      props.get("fromPort"), props.get("toPort"), props.get("protocol")))
    elif resource_type == "aws:ec2/securityGroup:SecurityGroup":
        for rule in props.get("ingress") or []:
            rules.append(([*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])],
                          rule.get("fromPort"), rule.get("toPort"), rule.get("protocol")))
    elif resource_type == "kubernetes:core/v1:Service" and (props.get("spec") or {}).get("type") == "LoadBalancer":
        ports = [p.get("port") for p in (props["spec"].get("ports") or [])]
        return [f"LoadBalancer Service exposes Ray {RAY_PRIVATE_PORTS[p]} port {p}" for p in ports if p in RAY_PRIVATE_PORTS]
    out = []
    for cidrs, lo, hi, proto in rules:
        if OPEN_CIDRS & {c for c in cidrs if c}:
            out += [f"Ray {RAY_PRIVATE_PORTS[p]} port {p} is open to the internet" for p in _covers(lo, hi, proto)]
    return out


def _load_balancers(resource_type: str, props: Props) -> list[tuple[str, dict, dict]]:
    """(where, metadata, spec) of every LoadBalancer Service: plain Services and a RayService's serveService."""
    if resource_type == "kubernetes:core/v1:Service":
        found = [("Service", props.get("metadata") or {}, props.get("spec") or {})]
    elif resource_type == "kubernetes:ray.io/v1:RayService":
        svc = (props.get("spec") or {}).get("serveService") or {}
        found = [("spec.serveService", svc.get("metadata") or {}, svc.get("spec") or {})]
    else:
        return []
    return [f for f in found if f[2].get("type") == "LoadBalancer"]


def check_serve_endpoint_not_open(resource_type: str, props: Props) -> list[str]:
    """A load balancer is internal, or internet-facing with source ranges that are not the whole internet;
    it never exposes Ray's private ports."""
    out = []
    for where, metadata, spec in _load_balancers(resource_type, props):
        annotations = metadata.get("annotations") or {}
        scheme = annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme")
        internal = scheme == "internal" or annotations.get("service.beta.kubernetes.io/aws-load-balancer-internal") == "true"
        ranges = spec.get("loadBalancerSourceRanges") or []
        if not internal and (not ranges or OPEN_CIDRS & set(ranges)):
            out.append(f"{where}: an internet-facing load balancer needs loadBalancerSourceRanges narrower than the "
                       f"whole internet (got {ranges or 'none'})")
        out += [f"{where}: exposes Ray {RAY_PRIVATE_PORTS[p['port']]} port {p['port']}"
                for p in spec.get("ports") or [] if p.get("port") in RAY_PRIVATE_PORTS]
    return out


def check_imdsv2(resource_type: str, props: Props) -> list[str]:
    """EC2 instances and launch templates require IMDSv2 tokens."""
    if resource_type not in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        return []
    tokens = (props.get("metadataOptions") or {}).get("httpTokens")
    return [] if tokens == "required" else [f"metadataOptions.httpTokens is {tokens!r}; IMDSv2 needs 'required'"]


def _truthy(value) -> bool:
    return value is True or str(value).lower() == "true"


def check_encrypted_volumes(resource_type: str, props: Props) -> list[str]:
    """Root, EBS and EFS volumes are encrypted."""
    if resource_type == "aws:ec2/instance:Instance":
        ok = _truthy((props.get("rootBlockDevice") or {}).get("encrypted"))
        return [] if ok else ["rootBlockDevice.encrypted must be true"]
    if resource_type in ("aws:ebs/volume:Volume", "aws:efs/fileSystem:FileSystem"):
        return [] if _truthy(props.get("encrypted")) else ["encrypted must be true"]
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        return [f"blockDeviceMappings[{i}].ebs.encrypted must be true"
                for i, m in enumerate(props.get("blockDeviceMappings") or []) if m.get("ebs") and not _truthy(m["ebs"].get("encrypted"))]
    return []


def _pod_specs(resource_type: str, props: Props) -> list[tuple[str, dict]]:
    """(where, pod spec) for RayService/RayCluster groups and workload templates."""
    spec = props.get("spec") or {}
    if resource_type in ("kubernetes:ray.io/v1:RayService", "kubernetes:ray.io/v1:RayCluster"):
        cluster = spec.get("rayClusterConfig", spec) if resource_type.endswith("RayService") else spec
        groups = [("headGroupSpec", cluster.get("headGroupSpec") or {})]
        groups += [(f"workerGroupSpecs.{g.get('groupName')}", g) for g in cluster.get("workerGroupSpecs") or []]
        return [(w, (g.get("template") or {}).get("spec") or {}) for w, g in groups]
    if resource_type in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"):
        return [("template", (spec.get("template") or {}).get("spec") or {})]
    return []


def check_pinned_images(resource_type: str, props: Props) -> list[str]:
    """Container images are pinned (digest or a version tag, never latest/untagged)."""
    return [f"{where}: image {c.get('image')!r} is not pinned"
            for where, pod in _pod_specs(resource_type, props)
            for c in pod.get("containers") or [] if not image_is_pinned(str(c.get("image", "")))]


def check_ray_pod_limits(resource_type: str, props: Props) -> list[str]:
    """Every Ray container sets CPU and memory limits."""
    if not resource_type.startswith("kubernetes:ray.io/v1:"):
        return []
    out = []
    for where, pod in _pod_specs(resource_type, props):
        for c in pod.get("containers") or []:
            limits = (c.get("resources") or {}).get("limits") or {}
            out += [f"{where}: container {c.get('name')} has no {k} limit" for k in ("cpu", "memory") if k not in limits]
    return out


def check_secrets_as_secrets(resource_type: str, props: Props) -> list[str]:
    """Passwords reach pods through Secret references, never literals; SSM secrets are SecureString."""
    out = []
    if resource_type == "kubernetes:ray.io/v1:RayService":
        gcs = ((props.get("spec") or {}).get("rayClusterConfig") or {}).get("gcsFaultToleranceOptions") or {}
        if "value" in (gcs.get("redisPassword") or {}):
            out.append("gcsFaultToleranceOptions.redisPassword must use valueFrom.secretKeyRef, not value")
    for where, pod in _pod_specs(resource_type, props):
        for c in pod.get("containers") or []:
            out += [f"{where}: env {e['name']} holds a literal secret; use valueFrom.secretKeyRef"
                    for e in c.get("env") or [] if SECRET_NAME.search(e.get("name", "")) and "value" in e]
    if resource_type == "kubernetes:core/v1:ConfigMap":
        out += [f"ConfigMap key {k} looks secret; use a Secret" for k in (props.get("data") or {}) if SECRET_NAME.search(k)]
    if resource_type == "aws:ssm/parameter:Parameter" and SECRET_NAME.search(str(props.get("name", ""))):
        if props.get("type") != "SecureString":
            out.append("a secret-looking SSM parameter must be a SecureString")
    return out


def check_ray_token_auth(resource_type: str, props: Props) -> list[str]:
    """Ray clusters run with token authentication (dashboard, REST API and GCS need the token)."""
    if resource_type not in ("kubernetes:ray.io/v1:RayService", "kubernetes:ray.io/v1:RayCluster"):
        return []
    spec = props.get("spec") or {}
    cluster = spec.get("rayClusterConfig", spec) if resource_type.endswith("RayService") else spec
    mode = (cluster.get("authOptions") or {}).get("mode")
    return [] if mode == "token" else [f"authOptions.mode is {mode!r}; set it to 'token'"]


def _policy(name: str, check: Callable[[str, Props], list[str]]) -> ResourceValidationPolicy:
    def validate(args, report_violation):
        for message in check(args.resource_type, args.props):
            report_violation(message)

    return ResourceValidationPolicy(name=name, description=(check.__doc__ or "").strip(), validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


CHECKS = {
    "no-public-ray-ports": check_no_public_ray_ports,
    "serve-endpoint-not-open": check_serve_endpoint_not_open,
    "imdsv2-required": check_imdsv2,
    "encrypted-volumes": check_encrypted_volumes,
    "pinned-images": check_pinned_images,
    "ray-pod-resource-limits": check_ray_pod_limits,
    "secrets-as-secrets": check_secrets_as_secrets,
    "ray-token-auth": check_ray_token_auth,
}
POLICIES = [_policy(name, check) for name, check in CHECKS.items()]
