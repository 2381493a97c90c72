"""RolloutGate: the gate of a RayService's incremental upgrade (rollout.kuberay_gate), in the RayService's namespace.

A Deployment of one pod running the gate from a ConfigMap of its own files (standard library only) on the Serve
image, so it needs nothing the image may lack; a ServiceAccount whose Role reaches only this RayService (get,
patch), its last-good ConfigMap (get, patch) and events (create); and, where the namespace's egress is contained,
NetworkPolicies letting the gate reach the API server and the stack's Prometheus and nothing else. The gate runs
as the restricted Pod Security level requires, with a read-only root file system. `render_*` are pure, so the
manifests are checked against Kubernetes' schemas.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import RayServiceSettings
from rayserve_pulumi.constants import PROMETHEUS_PORT
from rayserve_pulumi.kuberay import network
from rayserve_pulumi.kuberay.network import NAMESPACE_LABEL
from rayserve_pulumi.kuberay.rayservice import CONTAINER_SECURITY, POD_SECURITY
from rayserve_pulumi.rollout.gate import Thresholds
from rayserve_pulumi.rollout.kuberay_gate import last_good_name

__all__ = ["PROMETHEUS_LABELS", "gate_name", "gate_labels", "gate_files", "render_gate", "render_gate_policies",
           "RolloutGateArgs", "RolloutGate"]

_PACKAGE = Path(__file__).resolve().parents[1]
# ConfigMap key -> (where the pod finds it under /opt/rayserve-gate, its source in the package; None: empty)
_FILES = {"package.__init__.py": ("rayserve_pulumi/__init__.py", None),
          "rollout.__init__.py": ("rayserve_pulumi/rollout/__init__.py", None),
          "constants.py": ("rayserve_pulumi/constants.py", "constants.py"),
          "gate.py": ("rayserve_pulumi/rollout/gate.py", "rollout/gate.py"),
          "kuberay_gate.py": ("rayserve_pulumi/rollout/kuberay_gate.py", "rollout/kuberay_gate.py")}
_CODE_DIR = "/opt/rayserve-gate"
PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}  # kube-prometheus-stack's Prometheus pods
GATE_RESOURCES = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "250m", "memory": "192Mi"}}


def gate_name(service: str) -> str:
    return f"{service}-rollout-gate"


def gate_labels(service: str) -> dict[str, str]:
    """The gate pod's labels: not the Ray pods' (rayserve.io/service), so no Ray policy or budget selects it."""
    return {"app.kubernetes.io/name": "rayserve-rollout-gate", "app.kubernetes.io/instance": service}


def gate_files() -> dict[str, str]:
    """The ConfigMap's data: the gate's modules as this package has them (empty package markers first)."""
    return {key: (_PACKAGE / source).read_text() if source else "" for key, (_, source) in _FILES.items()}


def render_gate(s: RayServiceSettings, thresholds: Thresholds, image: pulumi.Input[str], prometheus_url: str,
                poll_s: float = 5.0) -> list[dict]:
    """ServiceAccount, Role, RoleBinding, the code and last-good ConfigMaps, and the Deployment (`image` as
    given: a plain value, or an Output Pulumi resolves inside the Deployment's spec)."""
    name, ns, labels = gate_name(s.name), s.namespace, gate_labels(s.name)
    files = gate_files()
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    meta = lambda n: {"name": n, "namespace": ns, "labels": dict(labels)}  # noqa: E731
    command = ["python", "-m", "rayserve_pulumi.rollout.kuberay_gate", "--namespace", ns, "--rayservice", s.name,
               "--prometheus", prometheus_url, "--thresholds", json.dumps(dataclasses.asdict(thresholds), sort_keys=True),
               "--poll-s", f"{poll_s:g}"]
    role_rules = [
        {"apiGroups": ["ray.io"], "resources": ["rayservices"], "resourceNames": [s.name], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [last_good_name(s.name)],
         "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    pod = {
        "serviceAccountName": name,
        "automountServiceAccountToken": True,
        "securityContext": dict(POD_SECURITY),
        "containers": [{
            "name": "gate", "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
            "workingDir": _CODE_DIR,
            "env": [{"name": "PYTHONPATH", "value": _CODE_DIR}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"}],
            "resources": GATE_RESOURCES,
            "securityContext": {**CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
            "volumeMounts": [{"name": "code", "mountPath": _CODE_DIR, "readOnly": True}],
        }],
        "volumes": [{"name": "code", "configMap": {"name": f"{name}-code", "items": [
            {"key": key, "path": path} for key, (path, _) in _FILES.items()]}}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(name), "rules": role_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(name),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-code"), "data": files},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(last_good_name(s.name))},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name), "spec": {
            "replicas": 1, "strategy": {"type": "Recreate"},  # one gate at a time
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels), "annotations": {"rayserve.io/gate-code": digest}},
                         "spec": pod}}},
    ]


def render_gate_policies(s: RayServiceSettings, monitoring_namespace: str, egress: network.Egress) -> list[dict]:
    """Where the namespace's egress is contained: the gate reaches the API server (443) and Prometheus."""
    labels = gate_labels(s.name)

    def policy(suffix: str, to: list[dict], port: int) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": f"{gate_name(s.name)}-{suffix}", "namespace": s.namespace},
                "spec": {"podSelector": {"matchLabels": dict(labels)}, "policyTypes": ["Egress"],
                         "egress": [{"to": to, "ports": [{"protocol": "TCP", "port": port}]}]}}

    return [policy("to-api-server", [{"ipBlock": {"cidr": c}} for c in egress.api_server_cidrs], 443),
            policy("to-prometheus", [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: monitoring_namespace}},
                                      "podSelector": {"matchLabels": dict(PROMETHEUS_LABELS)}}], PROMETHEUS_PORT)]


@dataclass(frozen=True)
class RolloutGateArgs:
    settings: RayServiceSettings = arg("the RayService the gate watches (name, namespace)")
    thresholds: Thresholds = arg("the gate's thresholds (RolloutSettings.thresholds())")
    image: pulumi.Input[str] = arg("the image the gate's Python runs in (the Serve image: any Ray image will do)")
    prometheus_url: str = arg("the stack's Prometheus, in the cluster (kuberay.monitoring.service_urls)")
    monitoring_namespace: str = arg("Prometheus' namespace (the gate's egress policy admits it)")
    egress: Optional[network.Egress] = arg("the namespace's contained egress (the API server's addresses); None: "
                                           "egress not restricted, no policy", None)


class RolloutGate(pulumi.ComponentResource):
    """Outputs `logs`: the kubectl command that shows what the gate decided."""

    def __init__(self, name: str, args: RolloutGateArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:RolloutGate", name, None, opts)
        s, child = args.settings, pulumi.ResourceOptions(parent=self)
        account, role, binding, code, last_good, deployment = render_gate(s, args.thresholds, args.image,
                                                                          args.prometheus_url)
        k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=account["metadata"], opts=child)
        k8s.rbac.v1.Role(f"{name}-role", metadata=role["metadata"], rules=role["rules"], opts=child)
        k8s.rbac.v1.RoleBinding(f"{name}-binding", metadata=binding["metadata"], role_ref=binding["roleRef"],
                                subjects=binding["subjects"], opts=child)
        k8s.core.v1.ConfigMap(f"{name}-code", metadata=code["metadata"], data=code["data"], opts=child)
        # the gate writes the last good spec; Pulumi only creates (and deletes) the ConfigMap
        k8s.core.v1.ConfigMap(f"{name}-last-good", metadata=last_good["metadata"],
                              opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data"]))
        k8s.apps.v1.Deployment(f"{name}-deployment", metadata=deployment["metadata"], spec=deployment["spec"],
                               opts=child)
        if args.egress is not None:
            network.declare(name, render_gate_policies(s, args.monitoring_namespace, args.egress), child)
        self.logs = pulumi.Output.from_input(f"kubectl -n {s.namespace} logs deploy/{gate_name(s.name)}")
        self.register_outputs({"logs": self.logs})
