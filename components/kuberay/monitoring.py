"""Monitoring for a RayService: kube-prometheus-stack (pinned Helm chart, opt-in) or a Prometheus Operator
already in the cluster, PodMonitors for the Ray head and workers, the Serve alert rules as a
PrometheusRule, and Ray's Grafana dashboards as ConfigMaps the Grafana sidecar loads.

Prometheus, Alertmanager and Grafana get ClusterIP Services only (reached with `kubectl port-forward`);
the RayService's NetworkPolicies admit the monitoring namespace to Ray's metrics ports. `render_*` are
pure functions, so the manifests can be checked against the Prometheus Operator's schemas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from rayserve_pulumi.args import arg
from rayserve_pulumi.config.stack import MetricsSettings
from rayserve_pulumi.constants import (
    GRAFANA_PORT, KUBE_PROMETHEUS_STACK_CHART as CHART, KUBE_PROMETHEUS_STACK_REPOSITORY, PROMETHEUS_PORT,
    NODE_TYPE_LABEL, RAY_METRICS_PORTS, SERVICE_LABEL,
)
from rayserve_pulumi.kuberay.security import pod_security_labels
from rayserve_pulumi.observability.dashboards import ray_dashboards
from rayserve_pulumi.observability.rules import rule_groups

__all__ = [
    "MONITORING_API", "DASHBOARD_LABEL", "METRICS_PORTS", "HEAD_METRICS_PORTS", "WORKER_METRICS_PORTS",
    "GRAFANA_SECRET_KEYS", "service_urls", "head_env", "chart_values", "render_pod_monitors",
    "render_prometheus_rule", "RayMonitoringArgs", "RayMonitoring",
]

MONITORING_API = "monitoring.coreos.com/v1"
DASHBOARD_LABEL = "grafana_dashboard"  # what the chart's Grafana sidecar looks for
METRICS_PORTS = RAY_METRICS_PORTS
HEAD_METRICS_PORTS = tuple(METRICS_PORTS)
WORKER_METRICS_PORTS = ("metrics",)
GRAFANA_SECRET_KEYS = {"user": "admin-user", "password": "admin-password"}


def service_urls(namespace: str) -> dict[str, str]:
    """In-cluster URLs of the chart's Prometheus and Grafana (the release is named after the chart)."""
    return {"prometheus": f"http://{CHART}-prometheus.{namespace}.svc:{PROMETHEUS_PORT}",
            "grafana": f"http://{CHART}-grafana.{namespace}.svc:80"}


def head_env(namespace: str) -> dict[str, str]:
    """What the Ray head needs to embed Grafana panels and query Prometheus (its dashboard's Metrics tab)."""
    urls = service_urls(namespace)
    return {"RAY_PROMETHEUS_HOST": urls["prometheus"], "RAY_PROMETHEUS_NAME": "Prometheus",
            "RAY_GRAFANA_HOST": urls["grafana"], "RAY_GRAFANA_IFRAME_HOST": f"http://127.0.0.1:{GRAFANA_PORT}"}


def chart_values(s: MetricsSettings, grafana_secret: str, storage_class: Optional[str]) -> dict:
    """kube-prometheus-stack values: every Service ClusterIP, no ingress, monitors and rules selected by
    `release`, admin credentials from a Secret, and Grafana's RBAC namespaced: its sidecar loads Ray's dashboards
    from the monitoring namespace only, so no ClusterRole lets it read every Secret of the cluster."""
    storage = {"storageSpec": {"volumeClaimTemplate": {"spec": {
        "storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}}}}}} if storage_class else {}
    return {
        "fullnameOverride": CHART,
        "prometheus": {
            "service": {"type": "ClusterIP"}, "ingress": {"enabled": False},
            "prometheusSpec": {"podMonitorSelector": {"matchLabels": {"release": s.release_label}},
                               "ruleSelector": {"matchLabels": {"release": s.release_label}},
                               "podMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {},
                               "scrapeInterval": f"{s.scrape_interval_s}s", "retention": "15d",
                               "resources": {"requests": {"cpu": "500m", "memory": "2Gi"},
                                             "limits": {"cpu": "2", "memory": "4Gi"}}, **storage},
        },
        "alertmanager": {"service": {"type": "ClusterIP"}, "ingress": {"enabled": False}},
        "grafana": {
            "service": {"type": "ClusterIP"}, "ingress": {"enabled": False},
            "admin": {"existingSecret": grafana_secret, "userKey": GRAFANA_SECRET_KEYS["user"],
                      "passwordKey": GRAFANA_SECRET_KEYS["password"]},
            "rbac": {"namespaced": True},
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
                                       "searchNamespace": None},  # its own namespace, where Ray's dashboards are
                        "datasources": {"searchNamespace": None}},
            "grafana.ini": {"security": {"allow_embedding": True}, "auth.anonymous": {"enabled": False}},
        },
    }


def render_pod_monitors(service: str, namespace: str, monitoring_namespace: str, release_label: str) -> list[dict]:
    """PodMonitors for the head (metrics, autoscaler, dashboard) and the workers of one RayService."""
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_label_ray_io_cluster"], "targetLabel": "ray_io_cluster"}]

    def monitor(kind: str, ports) -> dict:
        return {"apiVersion": MONITORING_API, "kind": "PodMonitor",
                "metadata": {"name": f"{service}-{kind}", "namespace": monitoring_namespace,
                             "labels": {"release": release_label}},
                "spec": {"jobLabel": f"ray-{kind}", "namespaceSelector": {"matchNames": [namespace]},
                         "selector": {"matchLabels": {SERVICE_LABEL: service, NODE_TYPE_LABEL: kind}},
                         "podMetricsEndpoints": [{"port": p, "relabelings": relabel} for p in ports]}}

    return [monitor("head", HEAD_METRICS_PORTS), monitor("worker", WORKER_METRICS_PORTS)]


def render_prometheus_rule(service: str, monitoring_namespace: str, release_label: str) -> dict:
    return {"apiVersion": MONITORING_API, "kind": "PrometheusRule",
            "metadata": {"name": f"{service}-serve-alerts", "namespace": monitoring_namespace,
                         "labels": {"release": release_label}},
            "spec": rule_groups()}


@dataclass(frozen=True)
class RayMonitoringArgs:
    settings: MetricsSettings = arg("namespace, chart version, scrape interval, whether to install the operator")
    service: str = arg("the RayService's name (its pods carry the rayserve.io/service label)")
    namespace: str = arg("the RayService's namespace")
    storage_class: Optional[pulumi.Input[str]] = arg("StorageClass for Prometheus' volume (None: emptyDir)", None)


class RayMonitoring(pulumi.ComponentResource):
    """Outputs `grafana` and `prometheus`: the port-forward commands that reach them."""

    def __init__(self, name: str, args: RayMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("rayserve:kuberay:RayMonitoring", name, None, opts)
        s, child = args.settings, pulumi.ResourceOptions(parent=self)
        # kube-prometheus-stack's node exporter uses the host's network, PID namespace and paths
        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata={
            "name": s.namespace, "labels": pod_security_labels("privileged" if s.install_operator else "restricted")},
            opts=child)
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        depends = [namespace]
        if s.install_operator:
            password = random.RandomPassword(f"{name}-grafana-password", length=32, special=False, opts=child)
            secret = k8s.core.v1.Secret(
                f"{name}-grafana-admin", metadata={"name": "grafana-admin", "namespace": s.namespace},
                string_data={GRAFANA_SECRET_KEYS["user"]: "admin", GRAFANA_SECRET_KEYS["password"]: password.result},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace],
                                            additional_secret_outputs=["string_data", "data"]))
            values = pulumi.Output.from_input(args.storage_class).apply(
                lambda sc: chart_values(s, "grafana-admin", sc))
            self.release = k8s.helm.v3.Release(
                f"{name}-kube-prometheus-stack", name=CHART, chart=CHART, version=s.chart_version,
                repository_opts={"repo": KUBE_PROMETHEUS_STACK_REPOSITORY}, namespace=s.namespace,
                skip_crds=False, atomic=True, cleanup_on_fail=True, timeout=900, values=values,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, secret]))
            depends.append(self.release)
        crd_opts = pulumi.ResourceOptions(parent=self, depends_on=depends)  # the operator's CRDs exist first
        for m in render_pod_monitors(args.service, args.namespace, s.namespace, s.release_label):
            k8s.apiextensions.CustomResource(f"{name}-{m['metadata']['name']}", api_version=MONITORING_API,
                                             kind="PodMonitor", metadata=m["metadata"], spec=m["spec"], opts=crd_opts)
        rule = render_prometheus_rule(args.service, s.namespace, s.release_label)
        k8s.apiextensions.CustomResource(f"{name}-{rule['metadata']['name']}", api_version=MONITORING_API,
                                         kind="PrometheusRule", metadata=rule["metadata"], spec=rule["spec"],
                                         opts=crd_opts)
        for file, content in ray_dashboards().items():
            k8s.core.v1.ConfigMap(f"{name}-{file.removesuffix('.json')}",
                                  metadata={"name": file.removesuffix(".json"), "namespace": s.namespace,
                                            "labels": {DASHBOARD_LABEL: "1"}},
                                  data={file: content}, opts=after_ns)
        self.grafana = pulumi.Output.from_input(
            f"kubectl -n {s.namespace} port-forward svc/{CHART}-grafana {GRAFANA_PORT}:80  # then "
            f"http://127.0.0.1:{GRAFANA_PORT} (user admin; password: kubectl -n {s.namespace} get secret "
            f"grafana-admin -o jsonpath='{{.data.admin-password}}' | base64 -d)" if s.install_operator else
            f"Ray's dashboards are ConfigMaps labelled {DASHBOARD_LABEL}=1 in {s.namespace}, for your Grafana's sidecar")
        self.prometheus = pulumi.Output.from_input(
            f"kubectl -n {s.namespace} port-forward svc/{CHART}-prometheus {PROMETHEUS_PORT}:{PROMETHEUS_PORT}"
            f"  # then http://127.0.0.1:{PROMETHEUS_PORT}")
        self.register_outputs({"grafana": self.grafana, "prometheus": self.prometheus})
