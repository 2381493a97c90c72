"""The rayserve policy pack's rules. Each resource `check_*` takes (resource_type, props) and returns
violations; each stack check takes every resource as (type, name, props). `POLICIES` wraps them as
pulumi-policy Resource/StackValidationPolicy objects (mandatory unless listed as advisory)."""
from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
from typing import Any, Callable, Iterable, Mapping

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from rayserve_pulumi.config.images import image_is_pinned
from rayserve_pulumi.constants import (
    GPU_RESOURCE, GRAFANA_PORT, INTERNAL_PORTS, NVIDIA_DEVICE_PLUGIN_CHART, PROMETHEUS_PORT,
)

__all__ = [
    "Props", "RAY_PRIVATE_PORTS", "OPEN_CIDRS", "SECRET_NAME", "ACCOUNT_WIDE_SSM", "CNI_POLICY",
    "SECRET_ON_COMMAND_LINE", "Resources", "check_no_public_ray_ports", "check_serve_endpoint_not_open",
    "check_imdsv2", "check_encrypted_volumes", "check_pinned_images", "check_ray_pod_limits",
    "check_secrets_as_secrets", "check_ray_token_auth", "check_no_account_wide_parameter_reads",
    "check_scoped_s3_access", "check_imds_hop_limit", "check_eks_api_not_open", "check_no_open_ingress",
    "check_no_public_instances", "check_ray_pods_unprivileged", "check_no_secrets_on_command_lines",
    "check_tls_on_internet_facing_endpoints", "MONITORING_PARTS", "MONITORING_PORTS", "check_monitoring_not_public",
    "check_cni_through_irsa", "check_network_policies", "check_gpu_device_plugin", "check_monitoring_rbac_namespaced", "check_egress_limited",
    "CHECKS", "STACK_CHECKS", "ADVISORY", "POLICIES",
]

Props = Mapping[str, Any]
RAY_PRIVATE_PORTS = INTERNAL_PORTS
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
SECRET_NAME = re.compile(r"password|secret|token|api[_-]?key", re.I)
ACCOUNT_WIDE_SSM = {"AmazonSSMManagedInstanceCore", "AmazonSSMReadOnlyAccess", "AmazonSSMFullAccess",
                    "AmazonEC2RoleforSSM"}  # managed policies granting ssm:GetParameter(s) on every parameter
CNI_POLICY = "AmazonEKS_CNI_Policy"
# A secret on a command line: a flag that takes one, or a secret-named $(VAR) expansion in container args.
SECRET_ON_COMMAND_LINE = re.compile(r"(?:^|\s)--?(requirepass|redis[-_]password|password|token)[= ]|"
                                    r"redis-cli[^|;]*\s-a\s|\$\(?[A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*\)?", re.I)
Resources = list[tuple[str, str, Props]]


def _covers(from_port, to_port, protocol, ports: Iterable[int]) -> list[int]:
    """Which of `ports` a rule's port range (and protocol) admits."""
    if str(protocol) in ("-1", "all"):
        return sorted(ports)
    lo, hi = int(from_port or 0), int(to_port if to_port is not None else from_port or 0)
    return [p for p in sorted(ports) if lo <= p <= hi]


def _ingress_rules(resource_type: str, props: Props) -> list[tuple[list[str], Any, Any, Any]]:
    """(CIDRs, from port, to port, protocol) of every ingress rule a security-group resource declares, in
    each of AWS' three shapes (a standalone VPC rule, an EC2 group rule, a group's inline rules)."""
    if resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules = [([props.get("cidrIpv4"), props.get("cidrIpv6")], props.get("fromPort"), props.get("toPort"),
                  props.get("ipProtocol"))]
    elif resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        rules = [([*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])],
                  props.get("fromPort"), props.get("toPort"), props.get("protocol"))]
    elif resource_type == "aws:ec2/securityGroup:SecurityGroup":
        rules = [([*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])],
                  rule.get("fromPort"), rule.get("toPort"), rule.get("protocol")) for rule in props.get("ingress") or []]
    else:
        return []
    return [([c for c in cidrs if c], lo, hi, proto) for cidrs, lo, hi, proto in rules]


def check_no_public_ray_ports(resource_type: str, props: Props) -> list[str]:
    """Dashboard, GCS and Ray client ports are never open to 0.0.0.0/0 (or ::/0)."""
    if resource_type == "kubernetes:core/v1:Service" and (props.get("spec") or {}).get("type") == "LoadBalancer":
        ports = [p.get("port") for p in (props["spec"].get("ports") or [])]
        return [f"LoadBalancer Service exposes Ray {RAY_PRIVATE_PORTS[p]} port {p}" for p in ports if p in RAY_PRIVATE_PORTS]
    return [f"Ray {RAY_PRIVATE_PORTS[p]} port {p} is open to the internet"
            for cidrs, lo, hi, proto in _ingress_rules(resource_type, props) if OPEN_CIDRS & set(cidrs)
            for p in _covers(lo, hi, proto, RAY_PRIVATE_PORTS)]


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


def _statements(resource_type: str, props: Props) -> list[dict]:
    """IAM policy statements of an inline role policy or a managed policy document."""
    if resource_type not in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        return []
    doc = props.get("policy")
    try:
        doc = json.loads(doc) if isinstance(doc, str) else doc
    except ValueError:
        return []
    statements = (doc or {}).get("Statement") or []
    return [st for st in ([statements] if isinstance(statements, dict) else statements) if st.get("Effect") == "Allow"]


def _listify(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def check_no_account_wide_parameter_reads(resource_type: str, props: Props) -> list[str]:
    """No role may read every SSM parameter of the account: no AmazonSSMManagedInstanceCore (Session Manager
    needs only its channel actions) and no ssm:GetParameter* on Resource "*"."""
    if resource_type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        name = str(props.get("policyArn", "")).rsplit("/", 1)[-1]
        return [f"managed policy {name} grants ssm:GetParameter on every parameter of the account"] \
            if name in ACCOUNT_WIDE_SSM else []
    out = []
    for st in _statements(resource_type, props):
        reads = [a for a in _listify(st.get("Action")) if a in ("*", "ssm:*") or a.lower().startswith("ssm:getparameter")]
        if reads and "*" in _listify(st.get("Resource")):
            out.append(f"{', '.join(reads)} on Resource '*': name the parameters")
    return out


def check_scoped_s3_access(resource_type: str, props: Props) -> list[str]:
    """S3 permissions name buckets: never Resource "*" or every bucket (arn:aws:s3:::*)."""
    out = []
    for st in _statements(resource_type, props):
        s3 = [a for a in _listify(st.get("Action")) if a in ("*", "s3:*") or a.lower().startswith("s3:")]
        wide = [r for r in _listify(st.get("Resource")) if r == "*" or re.fullmatch(r"arn:[\w-]+:s3:::\*(/\*)?", r)]
        if s3 and wide:
            out.append(f"{', '.join(s3)} on {', '.join(wide)}: name the bucket")
    return out


def check_imds_hop_limit(resource_type: str, props: Props) -> list[str]:
    """Instances and launch templates set IMDS' hop limit to 1: no container behind a bridge reaches the
    instance's credentials (pods use IRSA; the VM agent also blocks its host-network containers)."""
    if resource_type not in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        return []
    limit = (props.get("metadataOptions") or {}).get("httpPutResponseHopLimit")
    return [] if limit == 1 else [f"metadataOptions.httpPutResponseHopLimit is {limit!r}; set 1"]


def check_eks_api_not_open(resource_type: str, props: Props) -> list[str]:
    """The EKS API endpoint is private, or public only to named source ranges (never 0.0.0.0/0)."""
    if resource_type == "eks:index:Cluster":  # pulumi-eks: public access defaults to on, from anywhere
        public, cidrs = props.get("endpointPublicAccess", True), props.get("publicAccessCidrs")
    elif resource_type == "aws:eks/cluster:Cluster":
        vpc = props.get("vpcConfig") or {}
        public, cidrs = vpc.get("endpointPublicAccess", True), vpc.get("publicAccessCidrs")
    else:
        return []
    if public is False:
        return []
    if not cidrs or OPEN_CIDRS & set(cidrs):
        return [f"the Kubernetes API is public to {cidrs or 'everyone (no publicAccessCidrs)'}; set publicAccessCidrs "
                "to the deployers' ranges or turn public access off"]
    return []


def check_no_open_ingress(resource_type: str, props: Props) -> list[str]:
    """No security group admits the whole internet on any port (load balancers admit allowed_cidrs)."""
    return [f"ingress from {c} admits the whole internet"
            for cidrs, *_ in _ingress_rules(resource_type, props) for c in cidrs if c in OPEN_CIDRS]


def check_no_public_instances(resource_type: str, props: Props) -> list[str]:
    """Ray nodes have no public address: traffic arrives through a load balancer, operators through SSM."""
    if resource_type == "aws:ec2/eip:Eip" and props.get("instance"):
        return ["an Elastic IP puts an instance on the internet; put a load balancer in front"]
    if resource_type == "aws:ec2/instance:Instance" and props.get("associatePublicIpAddress") is True:
        return ["associatePublicIpAddress puts the instance on the internet"]
    return []


def check_ray_pods_unprivileged(resource_type: str, props: Props) -> list[str]:
    """Ray and Redis pods run as non-root, without privilege escalation, with every capability dropped."""
    out = []
    for where, pod in _pod_specs(resource_type, props):
        pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
        for c in pod.get("containers") or []:
            sc = c.get("securityContext") or {}
            name = f"{where}: container {c.get('name')}"
            if not (pod_non_root or sc.get("runAsNonRoot") is True):
                out.append(f"{name} may run as root (runAsNonRoot)")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{name} allows privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                out.append(f"{name} keeps Linux capabilities (drop ALL)")
    return out


def _decoded(value: str) -> str:
    """base64 (of gzip) user data as text; anything else as it is."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    try:
        raw = gzip.decompress(raw)
    except (OSError, EOFError):
        pass
    return raw.decode(errors="replace")


def _user_data(resource_type: str, props: Props) -> str:
    if resource_type == "aws:ec2/instance:Instance":
        return str(props.get("userData") or "") + (_decoded(str(props["userDataBase64"])) if props.get("userDataBase64") else "")
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate" and props.get("userData"):
        return _decoded(str(props["userData"]))
    return ""


def check_no_secrets_on_command_lines(resource_type: str, props: Props) -> list[str]:
    """No password or token on a command line (visible in /proc and `ps`): containers read them from files
    or the environment, user data passes none."""
    out = []
    for where, pod in _pod_specs(resource_type, props):
        for c in pod.get("containers") or []:
            probe = ((c.get("readinessProbe") or {}).get("exec") or {}).get("command") or []
            for part, words in (("command", c.get("command")), ("args", c.get("args")), ("readinessProbe", probe)):
                text = " ".join(str(w) for w in words or [])
                if SECRET_ON_COMMAND_LINE.search(text):
                    out.append(f"{where}: container {c.get('name')} {part} carries a secret: {text[:80]!r}")
    text = _user_data(resource_type, props)
    if text and SECRET_ON_COMMAND_LINE.search(text):
        out.append("user data passes a secret on a command line")
    return out


def check_tls_on_internet_facing_endpoints(resource_type: str, props: Props) -> list[str]:
    """Advisory: an internet-facing Serve load balancer terminates TLS (an ACM certificate)."""
    out = []
    for where, metadata, _spec in _load_balancers(resource_type, props):
        annotations = metadata.get("annotations") or {}
        if annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internet-facing" and \
                not annotations.get("service.beta.kubernetes.io/aws-load-balancer-ssl-cert"):
            out.append(f"{where}: internet-facing without TLS (set eks.serve_tls_certificate_arn, or "
                       "vm.tls_certificate_arn)")
    return out


MONITORING_PARTS = ("prometheus", "grafana", "alertmanager")
MONITORING_PORTS = {PROMETHEUS_PORT: "Prometheus", GRAFANA_PORT: "Grafana", 9093: "Alertmanager"}


def check_monitoring_not_public(resource_type: str, props: Props) -> list[str]:
    """Prometheus, Grafana and Alertmanager are never public: ClusterIP Services and no ingress in the monitoring
    chart, no LoadBalancer or NodePort Service on their ports, no security group rule admitting a CIDR to them
    (VMs reach them through Session Manager)."""
    out = []
    if resource_type == "kubernetes:helm.sh/v3:Release":
        values = props.get("values") or {}
        for part in MONITORING_PARTS:
            section = values.get(part) or {}
            kind = (section.get("service") or {}).get("type")
            if kind in ("LoadBalancer", "NodePort"):
                out.append(f"{part}.service.type is {kind}; keep it ClusterIP and port-forward")
            if (section.get("ingress") or {}).get("enabled") is True:
                out.append(f"{part}.ingress.enabled puts it on the network; port-forward instead")
    elif resource_type == "kubernetes:core/v1:Service" and (props.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort"):
        out += [f"a {props['spec']['type']} Service exposes {MONITORING_PORTS[p.get('port')]}"
                for p in props["spec"].get("ports") or [] if p.get("port") in MONITORING_PORTS]
    else:
        out += [f"{c} may reach {MONITORING_PORTS[port]} (port {port})"
                for cidrs, lo, hi, proto in _ingress_rules(resource_type, props) for c in cidrs
                for port in _covers(lo, hi, proto, MONITORING_PORTS)]
    return out


# ---- stack checks: what only several resources together tell -----------------------------------

def _role_names(resources: Resources, trusted: str) -> set[str]:
    return {props.get("name") or name for t, name, props in resources
            if t == "aws:iam/role:Role" and trusted in str(props.get("assumeRolePolicy", ""))}


def check_cni_through_irsa(resources: Resources) -> list[str]:
    """The VPC CNI's permissions belong to its service account (IRSA), not to the node role every pod's
    node shares: no AmazonEKS_CNI_Policy on a role EC2 assumes, and the vpc-cni add-on names an IRSA role."""
    ec2_roles = _role_names(resources, "ec2.amazonaws.com")
    out = [f"{name}: {CNI_POLICY} is attached to the node role {props.get('role')}; give it to the aws-node "
           "service account through IRSA" for t, name, props in resources
           if t == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
           and str(props.get("policyArn", "")).endswith(f"/{CNI_POLICY}") and props.get("role") in ec2_roles]
    clusters = [name for t, name, _ in resources if t in ("eks:index:Cluster", "aws:eks/cluster:Cluster")]
    addons = [props for t, _, props in resources if t == "aws:eks/addon:Addon" and props.get("addonName") == "vpc-cni"]
    if clusters and not any(a.get("serviceAccountRoleArn") for a in addons):
        out.append("no vpc-cni add-on with a serviceAccountRoleArn: the CNI would use the node role")
    return out


def check_network_policies(resources: Resources) -> list[str]:
    """Every namespace holding a RayService denies ingress by default (Redis and the head's internal ports
    are then reachable only as its other NetworkPolicies allow)."""
    namespaces = {(props.get("metadata") or {}).get("namespace") for t, _, props in resources
                  if t == "kubernetes:ray.io/v1:RayService"}
    denied = {(props.get("metadata") or {}).get("namespace") for t, _, props in resources
              if t == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
              and (props.get("spec") or {}).get("podSelector") in ({}, None)
              and "Ingress" in ((props.get("spec") or {}).get("policyTypes") or [])}
    return [f"namespace {ns}: no default-deny ingress NetworkPolicy; every pod reaches Ray's and Redis' ports"
            for ns in sorted(n for n in namespaces - denied if n)]


def _tolerates_gpu(values: Props) -> bool:
    return any(t.get("key") == GPU_RESOURCE and t.get("operator") == "Exists" for t in values.get("tolerations") or [])


def check_monitoring_rbac_namespaced(resource_type: str, props: Props) -> list[str]:
    """kube-prometheus-stack's Grafana keeps to its namespace: namespaced RBAC and sidecars that search their
    own namespace only (searching ALL gives it a ClusterRole that reads every Secret of the cluster)."""
    if resource_type != "kubernetes:helm.sh/v3:Release" or props.get("chart") != "kube-prometheus-stack":
        return []
    grafana = (props.get("values") or {}).get("grafana") or {}
    found = [] if (grafana.get("rbac") or {}).get("namespaced") is True else ["grafana.rbac.namespaced is not true"]
    for sidecar, conf in ((grafana.get("sidecar") or {}).items()):
        if isinstance(conf, dict) and str(conf.get("searchNamespace", "")).upper() == "ALL":
            found.append(f"grafana.sidecar.{sidecar} searches ALL namespaces")
    return found


def check_egress_limited(resources: Resources) -> list[str]:
    """Every namespace with a RayService denies egress by default (a policy selecting every pod, Egress, no
    rule), and no egress rule opens every port to the internet."""
    found = []
    policies = [p for t, _, p in resources if t == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    for t, name, props in resources:
        if t != "kubernetes:ray.io/v1:RayService":
            continue
        namespace = (props.get("metadata") or {}).get("namespace")
        mine = [(p.get("spec") or {}) for p in policies if (p.get("metadata") or {}).get("namespace") == namespace]
        if not any(s.get("podSelector") in ({}, {"matchLabels": {}}) and "Egress" in (s.get("policyTypes") or [])
                   and not s.get("egress") for s in mine):
            found.append(f"namespace {namespace} of RayService {name} has no default-deny egress NetworkPolicy")
        for s in mine:
            for rule in s.get("egress") or []:
                opens = any((peer.get("ipBlock") or {}).get("cidr") in OPEN_CIDRS for peer in rule.get("to") or [])
                if opens and not rule.get("ports"):
                    found.append(f"namespace {namespace}: an egress rule opens every port to the internet")
    return found


def check_gpu_device_plugin(resources: Resources) -> list[str]:
    """GPU node groups and Karpenter GPU node pools have NVIDIA's device plugin (tolerating their taint):
    without it no node advertises nvidia.com/gpu and GPU pods stay Pending."""
    gpu_groups = [name for t, name, p in resources if t == "eks:index:ManagedNodeGroup"
                  and ("NVIDIA" in str(p.get("amiType", "")) or any(x.get("key") == GPU_RESOURCE
                                                                    for x in p.get("taints") or []))]
    gpu_groups += [name for t, name, p in resources if t == NODE_POOL and (
        GPU_RESOURCE in ((p.get("spec") or {}).get("limits") or {})
        or any(x.get("key") == GPU_RESOURCE for x in _pool_template(p).get("taints") or []))]
    plugins = [p for t, _, p in resources if t == "kubernetes:helm.sh/v3:Release"
               and p.get("chart") == NVIDIA_DEVICE_PLUGIN_CHART and _tolerates_gpu(p.get("values") or {})]
    return [f"GPU node group {g} has no NVIDIA device plugin tolerating its {GPU_RESOURCE} taint"
            for g in gpu_groups] if gpu_groups and not plugins else []


NODE_POOL, NODE_CLASS = "kubernetes:karpenter.sh/v1:NodePool", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def _pool_template(props: Props) -> dict:
    return ((props.get("spec") or {}).get("template") or {}).get("spec") or {}


def check_node_pools_limited(resource_type: str, props: Props) -> list[str]:
    """Karpenter node pools set CPU and memory limits: a pool without them launches nodes without bound
    (a runaway autoscaler, a bad replica count) and so spends without bound."""
    if resource_type != NODE_POOL:
        return []
    limits = (props.get("spec") or {}).get("limits") or {}
    return [f"spec.limits.{k} is not set; a node pool without it grows without bound" for k in ("cpu", "memory")
            if k not in limits]


def check_node_classes_hardened(resource_type: str, props: Props) -> list[str]:
    """Karpenter's EC2NodeClasses give nodes what the managed groups' launch templates give: IMDSv2 with hop
    limit 1, encrypted volumes, and a pinned AMI (an alias at a version, never @latest)."""
    if resource_type != NODE_CLASS:
        return []
    spec = props.get("spec") or {}
    meta = spec.get("metadataOptions") or {}
    out = []
    if meta.get("httpTokens") != "required":
        out.append(f"metadataOptions.httpTokens is {meta.get('httpTokens')!r}; IMDSv2 needs 'required'")
    if meta.get("httpPutResponseHopLimit") != 1:
        out.append(f"metadataOptions.httpPutResponseHopLimit is {meta.get('httpPutResponseHopLimit')!r}; set 1")
    out += [f"blockDeviceMappings[{i}].ebs.encrypted must be true"
            for i, m in enumerate(spec.get("blockDeviceMappings") or []) if not _truthy((m.get("ebs") or {}).get("encrypted"))]
    if not spec.get("blockDeviceMappings"):
        out.append("blockDeviceMappings is not set; the AMI's default root volume is not encrypted by this stack")
    out += [f"amiSelectorTerms[{i}].alias {t['alias']!r} follows the latest AMI; pin a version"
            for i, t in enumerate(spec.get("amiSelectorTerms") or []) if str(t.get("alias", "")).endswith("@latest")]
    return out


def _policy(name: str, check: Callable[[str, Props], list[str]]) -> ResourceValidationPolicy:
    def validate(args, report_violation):
        for message in check(args.resource_type, args.props):
            report_violation(message)

    return ResourceValidationPolicy(name=name, description=(check.__doc__ or "").strip(), validate=validate,
                                    enforcement_level=EnforcementLevel.ADVISORY if name in ADVISORY
                                    else EnforcementLevel.MANDATORY)


def _stack_policy(name: str, check: Callable[[Resources], list[str]]) -> StackValidationPolicy:
    def validate(args, report_violation):
        for message in check([(r.resource_type, r.name, r.props) for r in args.resources]):
            report_violation(message)

    return StackValidationPolicy(name=name, description=(check.__doc__ or "").strip(), validate=validate,
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
    "no-account-wide-parameter-reads": check_no_account_wide_parameter_reads,
    "scoped-s3-access": check_scoped_s3_access,
    "imds-hop-limit-1": check_imds_hop_limit,
    "eks-api-not-open": check_eks_api_not_open,
    "no-open-ingress": check_no_open_ingress,
    "no-public-instances": check_no_public_instances,
    "ray-pods-unprivileged": check_ray_pods_unprivileged,
    "no-secrets-on-command-lines": check_no_secrets_on_command_lines,
    "tls-on-internet-facing-endpoints": check_tls_on_internet_facing_endpoints,
    "monitoring-not-public": check_monitoring_not_public,
    "monitoring-rbac-namespaced": check_monitoring_rbac_namespaced,
    "node-pools-limited": check_node_pools_limited,
    "node-classes-hardened": check_node_classes_hardened,
}
STACK_CHECKS = {
    "cni-through-irsa": check_cni_through_irsa,
    "network-policies": check_network_policies,
    "gpu-device-plugin": check_gpu_device_plugin,
    "egress-limited": check_egress_limited,
}
ADVISORY = {"tls-on-internet-facing-endpoints"}  # TLS is optional (a certificate is the stack's to give)
POLICIES = [*(_policy(name, check) for name, check in CHECKS.items()),
            *(_stack_policy(name, check) for name, check in STACK_CHECKS.items())]
