"""A corpus of bad stack and Serve configs. Each case fails with a line naming the exact key, through
`rayserve validate` (exit status 1) and through the program under Pulumi mocks (zero resources
declared); valid variants of the same inputs are accepted."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rayserve_pulumi import cli
from rayserve_pulumi.config import ConfigError
from rayserve_pulumi.config.serve import bundled_text
from tests.pulumi_harness import Rendered, render, stack_values

BASE_SERVE = yaml.safe_load(bundled_text("serve_config.yaml"))
INF, NAN = float("inf"), float("nan")
DIGEST = "sha256:" + "ab" * 32


def _set(values: dict, path: str, value) -> dict:
    values = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {}) if not key.isdigit() else node[int(key)]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return values


class _Delete:
    """The value that removes a key (its repr names it: test ids must be the same in every test process)."""

    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()


def _override(app: str, deployment: str, **fields):
    return ("serve.overrides", {app: {deployment: fields}})


def _group(**fields):
    return ("eks.node_groups.0", {"name": "cpu", "instance_types": ["m6i.xlarge"], **fields})


PRICE = "serve config applications[fruit].deployments[MangoStand]"
STACK_CASES = [
    # Kubernetes names, namespaces and labels
    ("dev", "ray_service.namespace", "Ray", "rayserve:ray_service.namespace:"),
    ("dev", "ray_service.namespace", "ray_ns", "rayserve:ray_service.namespace:"),
    ("dev", "ray_service.namespace", "-ray", "rayserve:ray_service.namespace:"),
    ("dev", "ray_service.namespace", "a" * 64, "rayserve:ray_service.namespace:"),
    ("dev", "kuberay.namespace", "Kuberay", "rayserve:kuberay.namespace:"),
    ("dev", "ray_service.name", "1ray", "rayserve:ray_service.name:"),
    ("dev", "ray_service.name", "r" * 48, "rayserve:ray_service.name:"),
    ("dev", "ray_service.name", "Ray_Service", "rayserve:ray_service.name:"),
    ("dev", "ray_service.worker_groups.0.name", "CPU", "rayserve:ray_service.worker_groups[CPU].name:"),
    ("dev", "eks.node_groups.0.name", "cpu_group", "rayserve:eks.node_groups[cpu_group].name:"),
    ("dev", "eks.storage_class", "GP3", "rayserve:eks.storage_class:"),
    ("dev", "eks.node_groups.0.labels", {"team/": "x"}, "rayserve:eks.node_groups[cpu].labels:"),
    ("dev", "eks.node_groups.0.labels", {"team": "a b"}, "rayserve:eks.node_groups[cpu].labels:"),
    ("dev", "eks.node_groups.0.labels", {"x" * 64: "v"}, "rayserve:eks.node_groups[cpu].labels:"),
    ("dev", "eks.node_groups.0.labels", {"Bad_Prefix.io/team": "v"}, "rayserve:eks.node_groups[cpu].labels:"),
    # Kubernetes quantities
    ("dev", "ray_service.head.cpu", "2 cores", "rayserve:ray_service.head.cpu:"),
    ("dev", "ray_service.head.memory", "4GB", "rayserve:ray_service.head.memory:"),
    ("dev", "ray_service.head.memory", "0", "rayserve:ray_service.head.memory:"),
    ("dev", "ray_service.head.cpu", "", "rayserve:ray_service.head.cpu:"),
    ("dev", "ray_service.worker_groups.0.cpu", "-1", "rayserve:ray_service.worker_groups[cpu].cpu:"),
    ("dev", "ray_service.worker_groups.0.memory", 4096, "rayserve:ray_service.worker_groups[cpu].memory:"),
    # numbers: finite, whole where whole, booleans and strings are not numbers
    ("local", "local.num_cpus", True, "rayserve:local.num_cpus:"),
    ("local", "local.num_cpus", 4.5, "rayserve:local.num_cpus:"),
    ("local", "local.num_cpus", "4.5", "rayserve:local.num_cpus:"),
    ("local", "local.num_cpus", "four", "rayserve:local.num_cpus:"),
    ("local", "local.num_cpus", "true", "rayserve:local.num_cpus:"),
    ("local", "local.deploy_timeout_s", "inf", "rayserve:local.deploy_timeout_s:"),
    ("local", "local.deploy_timeout_s", "1e309", "rayserve:local.deploy_timeout_s:"),
    ("local", "local.deploy_timeout_s", "1,5", "rayserve:local.deploy_timeout_s:"),
    ("local", "metrics.enabled", "yes", "rayserve:metrics.enabled:"),
    ("local", "metrics.enabled", 1, "rayserve:metrics.enabled:"),
    ("local", "metrics.enabled", "1", "rayserve:metrics.enabled:"),
    ("local", "local.num_cpus", 0, "rayserve:local.num_cpus:"),
    ("local", "local.deploy_timeout_s", INF, "rayserve:local.deploy_timeout_s:"),
    ("local", "local.deploy_timeout_s", NAN, "rayserve:local.deploy_timeout_s:"),
    ("local", "local.deploy_timeout_s", 1e309, "rayserve:local.deploy_timeout_s:"),
    ("local", "local.num_gpus", -1, "rayserve:local.num_gpus:"),
    ("dev", "ray_service.worker_groups.0.replicas", True, "rayserve:ray_service.worker_groups[cpu].replicas:"),
    ("dev", "eks.node_groups.0.desired_size", "two", "rayserve:eks.node_groups[cpu].desired_size:"),
    ("dev", "ray_service.head.num_cpus", -1, "rayserve:ray_service.head.num_cpus:"),
    ("dev", "ray_service.head.gpu", True, "rayserve:ray_service.head.gpu:"),
    ("local", *_override("fruit", "MangoStand", num_replicas=True), "rayserve:serve.overrides.fruit.MangoStand.num_replicas:"),
    ("local", *_override("fruit", "MangoStand", num_replicas=-1), "rayserve:serve.overrides.fruit.MangoStand.num_replicas:"),
    ("local", *_override("fruit", "MangoStand", num_replicas="many"), "rayserve:serve.overrides.fruit.MangoStand.num_replicas:"),
    ("local", *_override("fruit", "MangoStand", num_replicas="3.5"), "rayserve:serve.overrides.fruit.MangoStand.num_replicas:"),
    ("local", *_override("fruit", "MangoStand", health_check_period_s=INF), "rayserve:serve.overrides.fruit.MangoStand.health_check_period_s:"),
    ("local", *_override("fruit", "MangoStand", max_ongoing_requests=0), "rayserve:serve.overrides.fruit.MangoStand.max_ongoing_requests:"),
    ("local", *_override("fruit", "MangoStand", user_config={"price": INF}), f"{PRICE}.user_config.price:"),
    ("local", "serve.http_port", 70000, "rayserve:serve.http_port:"),
    ("local", "serve.http_port", 0, "rayserve:serve.http_port:"),
    ("local", "local.dashboard_port", 70000, "rayserve:local.dashboard_port:"),
    # AWS: CIDRs, ARNs, AMI ids, tags
    ("vm", "vm.allowed_cidrs", ["10.0.0.0/33"], "rayserve:vm.allowed_cidrs[0]:"),
    ("vm", "vm.allowed_cidrs", ["2001:db8::/32"], "rayserve:vm.allowed_cidrs[0]:"),
    ("vm", "vm.allowed_cidrs", ["203.0.113.7/24"], "rayserve:vm.allowed_cidrs[0]:"),
    ("vm", "vm.allowed_cidrs", ["not-a-cidr"], "rayserve:vm.allowed_cidrs[0]:"),
    ("vm", "vm.allowed_cidrs", [], "rayserve: vm.load_balancer_scheme internet-facing needs vm.allowed_cidrs"),
    ("prod", "ray_service.load_balancer_scheme", "internet-facing", "rayserve: ray_service.load_balancer_scheme "
     "internet-facing needs "
     "ray_service.allowed_cidrs"),
    # security: nothing open to the whole internet, TLS certificates are ACM ARNs
    ("vm", "vm.allowed_cidrs", ["0.0.0.0/0"], "rayserve:vm.allowed_cidrs[0]: '0.0.0.0/0' is the whole internet"),
    ("vm", "vm.load_balancer_scheme", "public", "rayserve:vm.load_balancer_scheme:"),
    ("vm", "vm.tls_certificate_arn", "arn:aws:iam::123456789012:server-certificate/x", "rayserve:vm.tls_certificate_arn:"),
    ("prod", "ray_service.allowed_cidrs", ["0.0.0.0/0"], "rayserve:ray_service.allowed_cidrs[0]:"),
    ("prod", "eks.serve_tls_certificate_arn", "not-an-arn", "rayserve:eks.serve_tls_certificate_arn:"),
    ("dev", "eks.serve_tls_certificate_arn", "arn:aws:acm:us-west-2:123456789012:certificate/0b9f6a52-5a1e-4c7e-9d3f-2a8e4c6b1d70",
     "rayserve: eks.serve_tls_certificate_arn is the Serve NLB's: set ray_service.service_type LoadBalancer"),
    ("prod", "ray_service.tls_certificate_arn", "arn:aws:acm:us-west-2:123456789012:certificate/0b9f6a52-5a1e-4c7e-9d3f-2a8e4c6b1d70",
     "rayserve:ray_service.tls_certificate_arn: Extra inputs are not permitted"),
    ("dev", "eks.api_public_cidrs", ["0.0.0.0/0"], "rayserve:eks.api_public_cidrs[0]: '0.0.0.0/0' is the whole internet"),
    ("dev", "eks.endpoint_public_access", True, "rayserve:eks.endpoint_public_access:"),
    ("vm", "vm.vpc_cidr", "10.0.0.0/8", "rayserve:vm.vpc_cidr:"),
    ("dev", "eks.vpc_cidr", "fd00::/56", "rayserve:eks.vpc_cidr:"),
    ("vm", "vm.s3_bucket_arn", "*", "rayserve:vm.s3_bucket_arn:"),
    ("vm", "vm.s3_bucket_arn", "arn:aws:s3:::my-bucket/*", "rayserve:vm.s3_bucket_arn:"),
    ("vm", "vm.s3_bucket_arn", "arn:aws:s3:::My_Bucket", "rayserve:vm.s3_bucket_arn:"),
    ("vm", "vm.ami_id", "ami-123", "rayserve:vm.ami_id:"),
    ("vm", "vm.ami_id", "ami-XYZ00000", "rayserve:vm.ami_id:"),
    ("vm", "tags", {"aws:owner": "x"}, "rayserve:tags:"),
    ("vm", "tags", {"k" * 129: "v"}, "rayserve:tags:"),
    ("vm", "tags", {"team": "v" * 257}, "rayserve:tags:"),
    ("vm", "tags", {"team": "a;b"}, "rayserve:tags:"),
    # images: the OCI reference grammar, pinned
    ("dev", "image", {"uri": "repo/apps@sha256:abc"}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "repo/apps@sha256:" + "AB" * 32}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "Repo/Apps:1.0"}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "-rm:1.0"}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "rayproject/ray:latest"}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "registry.example.com/apps"}, "rayserve:image.uri:"),
    ("dev", "image", {"uri": "a:b:c"}, "rayserve:image.uri:"),
    ("dev", "image", {"build": True, "tag": "latest"}, "rayserve:image.tag:"),
    ("dev", "image", {"build": True, "tag": "-v1"}, "rayserve:image.tag:"),
    ("dev", "image", {"build": True, "repository_name": "Apps"}, "rayserve:image.repository_name:"),
    ("dev", "image", {"build": True, "ray_base_image": "rayproject/ray"}, "rayserve:image.ray_base_image:"),
    ("dev", "image", {"build": True, "platform": "windows/amd64"}, "rayserve:image.platform:"),
    ("dev", "image", {"uri": "x.io/a:1", "build": True}, "rayserve:image:"),
    ("dev", "image", {}, "rayserve: platform eks needs image.uri"),
    # placement: pods and actors that cannot fit, GPUs where there are none, unknown instance types
    ("prod", "ray_service.head.memory", "16Gi", "rayserve:ray_service.head: asks for cpu"),
    # 1700m fits an m6i.large's 1780m alone; KubeRay's autoscaler sidecar on the head asks 200m more
    ("prod", "ray_service.head.cpu", "1700m", "rayserve:ray_service.head: asks for cpu 1700m (1900m), memory 6Gi "
     "(6656 MiB) with the autoscaler sidecar's 200m and 512 MiB"),
    ("dev", "ray_service.worker_groups.0.cpu", "8", "rayserve:ray_service.worker_groups[cpu]: asks for cpu"),
    ("dev", "ray_service.worker_groups.0.gpu", 1, "is not a GPU node group"),
    ("dev", "ray_service.worker_groups.0.node_group", "arm", "is not an eks node group"),
    ("dev", "eks.node_groups.0.instance_types", ["m9z.huge"], "rayserve:eks.node_groups[cpu].instance_types[0]:"),
    ("dev", "eks.node_groups.0.instance_types", ["m6i.xlarge", "g5.xlarge"], "rayserve:eks.node_groups[cpu].instance_types:"),
    ("dev", *_group(gpu=True), "rayserve:eks.node_groups[cpu]: "),
    ("dev", "eks.node_groups", [{"name": "gpu", "instance_types": ["g5.xlarge"], "gpu": True}], "CPU node group"),
    ("vm", "vm.head_instance_type", "m9z.huge", "rayserve:vm.head_instance_type:"),
    ("local", *_override("summarize_translate", "Summarizer", ray_actor_options={"num_gpus": 1}),
     "serve config applications[summarize_translate].deployments[Summarizer].ray_actor_options.num_gpus:"),
    ("dev", *_override("summarize_translate", "Translator", ray_actor_options={"num_gpus": 0.5}),
     "serve config applications[summarize_translate].deployments[Translator].ray_actor_options.num_gpus:"),
    ("vm", *_override("fruit", "MangoStand", ray_actor_options={"num_gpus": 1}), f"{PRICE}.ray_actor_options.num_gpus:"),
    ("local", *_override("fruit", "MangoStand", ray_actor_options={"num_cpus": 16}), f"{PRICE}.ray_actor_options.num_cpus:"),
    ("dev", "eks.kubernetes_version", "1.20", "rayserve:eks.kubernetes_version:"),
    # Karpenter's node pools (prod): limits no node or pod fits, durations, AMI pins, names, versions
    ("prod", "eks.karpenter.node_pools.0.limits", {"cpu": 4, "memory_gib": 16},
     "rayserve:eks.karpenter.node_pools[cpu]: node pool cpu: limits (cpu 4, memory_gib 16, gpus 0) are below one "
     "m6i.2xlarge node"),
    ("prod", "eks.karpenter.node_pools.0", {"name": "cpu", "instance_types": ["m6i.xlarge", "m6i.4xlarge"],
                                            "limits": {"cpu": 8, "memory_gib": 64}},
     "rayserve:ray_service.worker_groups[cpu]: asks for cpu 4 (4000m), memory 16Gi (16384 MiB) and 0 GPU(s), but "
     "node pool 'cpu' within its limits (cpu 8, memory_gib 64, gpus 0)"),
    ("prod", "eks.karpenter.node_pools.1.limits", {"cpu": 16, "memory_gib": 64},
     "rayserve:eks.karpenter.node_pools[gpu]: node pool gpu: a GPU pool needs limits.gpus >= 1"),
    ("prod", "eks.karpenter.node_pools.0.limits.gpus", 1, "rayserve:eks.karpenter.node_pools[cpu]: node pool cpu: "
     "limits.gpus is for GPU pools"),
    ("prod", "eks.karpenter.node_pools.0.limits.cpu", 0, "rayserve:eks.karpenter.node_pools[cpu].limits.cpu:"),
    ("prod", "eks.karpenter.node_pools.0.limits.cpu", "lots", "rayserve:eks.karpenter.node_pools[cpu].limits.cpu:"),
    ("prod", "eks.karpenter.node_pools.0.consolidate_after", "5 minutes",
     "rayserve:eks.karpenter.node_pools[cpu].consolidate_after:"),
    ("prod", "eks.karpenter.node_pools.0.capacity_types", ["reserved"],
     "rayserve:eks.karpenter.node_pools[cpu].capacity_types[0]:"),
    ("prod", "eks.karpenter.ami_alias", "al2023@latest", "rayserve:eks.karpenter.ami_alias:"),
    ("prod", "eks.karpenter.chart_version", "0.37.0", "rayserve:eks.karpenter.chart_version:"),
    ("prod", "eks.karpenter.node_pools", [], "rayserve:eks.karpenter.node_pools:"),
    ("prod", "eks.karpenter.node_pools.0.name", "system", "node group and node pool names must be unique"),
    ("prod", "eks.kubernetes_version", "1.29", "Karpenter 1.14.1 and its AMI support Kubernetes 1.30"),
    ("prod", "ray_service.worker_groups.1.node_group", "cpu", "is not a GPU node group"),
    ("prod", "ray_service.worker_groups.0.node_group", "arm", "is not an eks node group or node pool"),
    ("dev", "eks.node_groups.0.min_size", 5, "min_size <= desired_size <= max_size"),
    ("dev", "ray_service.worker_groups.0.min_replicas", 5, "min_replicas 5 > max_replicas 2"),
    ("vm", "vm.worker_min", 9, "worker_min <= worker_desired <= worker_max"),
    ("dev", "ray_service.upgrade_strategy", "NewClusterWithIncrementalUpgrade", "needs incremental_upgrade.gateway_class"),
    ("dev", "ray_service.upgrade_strategy", "Rolling", "rayserve:ray_service.upgrade_strategy:"),
    ("dev", "kuberay.chart_version", "latest", "rayserve:kuberay.chart_version:"),
    # gated rollouts: the gate's own rules, each naming its key; a platform that does not step traffic refuses it
    ("local", "rollout.steps", [50, 25, 100], "rayserve:rollout.steps: steps [50, 25, 100]: percentages from 1 to 100"),
    ("local", "rollout.steps", [5, 50], "ending at 100"),
    ("local", "rollout.max_error_rate", 1.5, "max_error_rate must be at least 0 and below 1"),
    ("local", "rollout.max_p99_ratio", 0.5, "max_p99_ratio must be at least 1"),
    ("local", "rollout.watch_s", 400, "watch_s must be above 0 and at most step_budget_s (300"),
    ("local", "rollout.min_requests", 0, "min_requests must be a whole number of at least 1"),
    ("local", "rollout.max_error_rate", NAN, "rayserve:rollout.max_error_rate:"),
    ("local", "rollout.enabled", "yes", "rayserve:rollout.enabled:"),
    ("local", "rollout.steps", [5, 100.5], "rayserve:rollout.steps[1]: Input should be a valid integer"),
    ("dev", "rollout.steps", [10, 100], "rollout.steps: on KubeRay traffic moves by "
                                        "ray_service.incremental_upgrade.step_size_percent"),
    ("dev", "rollout.max_error_rate", 0.05, "rollout gates an incremental upgrade on KubeRay: set "
                                           "ray_service.upgrade_strategy NewClusterWithIncrementalUpgrade"),
    ("vm", "rollout.watch_s", 400, "watch_s must be above 0 and at most step_budget_s (300"),
    ("vm", "serve.http_port", 8266,
     "serve config http_options.port: 8266 collides with the Ray dashboard agent gRPC port"),
    ("dev", "kuberay.repository", "ftp://charts.example.com", "rayserve:kuberay.repository:"),
    # ports: with each other, with Ray's own and its worker port range
    ("vm", "serve.http_port", 8265, "serve config http_options.port: 8265 collides with the Ray dashboard port"),
    ("dev", "serve.http_port", 6379, "serve config http_options.port: 6379 collides with the Ray GCS port"),
    ("local", "serve.http_port", 8265, "serve config http_options.port: 8265 collides with the Ray dashboard port"),
    ("local", "serve.http_port", 15000, "serve config http_options.port: 15000 lies in Ray's worker port range"),
    ("local", "local.gcs_port", 8265, "rayserve:local: gcs_port and dashboard_port are both 8265"),
    ("local", "local.gcs_port", 12000, "rayserve:local.gcs_port: 12000 lies in Ray's worker port range"),
    ("local", "local.haproxy_metrics_port", 8404, "rayserve:local: haproxy_stats_port and haproxy_metrics_port are both 8404"),
    ("local", "local.haproxy_stats_port", 12000, "rayserve:local.haproxy_stats_port: 12000 lies in Ray's worker port range"),
    ("local", "serve.http_port", 9101, "serve config http_options.port: 9101 collides with the Ray HAProxy metrics port"),
    ("local", "serve.http_port", 8500, "serve config http_options.port: 8500 collides with the Ray Serve fallback proxy port"),
    ("local", "local.ray_client_port", 8265, "rayserve:local: dashboard_port and ray_client_port are both 8265"),
    ("local", "local.ray_client_port", 30000, "rayserve:local.ray_client_port: 30000 lies in Serve's direct-ingress"),
    ("local", "local.fallback_proxy_port", 8404, "rayserve:local: haproxy_stats_port and fallback_proxy_port are both 8404"),
    ("local", "local.fallback_proxy_grpc_port", 15000, "rayserve:local.fallback_proxy_grpc_port: 15000 lies in Ray's worker port range"),
    ("local", "local.dashboard_agent_grpc_port", 8265, "rayserve:local: dashboard_port and dashboard_agent_grpc_port are both 8265"),
    ("local", "local.runtime_env_agent_port", 15000, "rayserve:local.runtime_env_agent_port: 15000 lies in Ray's worker port range"),
    ("local", "local.dashboard_agent_listen_port", 80, "rayserve:local.dashboard_agent_listen_port: Input should be greater than or equal to 1024"),
    ("local", "serve.http_port", 8266, "serve config http_options.port: 8266 collides with the Ray dashboard agent gRPC port"),
    # direct ingress (the HAProxy ingress, throughput-optimized Serve: the defaults) binds replica ports from ranges
    ("local", "local.haproxy_metrics_port", 30100, "rayserve:local.haproxy_metrics_port: 30100 lies in Serve's "
     "direct-ingress replica HTTP ports 30000-31000"),
    ("vm", "serve.http_port", 40000, "serve config http_options.port: 40000 lies in Serve's direct-ingress replica gRPC "
     "ports 40000-41000"),
    ("local", "metrics", {"enabled": True, "prometheus_port": 19999},
     "rayserve:metrics.prometheus_port: 19999 lies in Ray's worker port range 10002-19999"),
    ("local", "local.host", "localhost!", "rayserve:local.host:"),
    ("local", "local.host", "0.0.0.0.0", "rayserve:local.host:"),
    ("local", "local", {"host": "0.0.0.0", "auth_mode": "disabled"}, "rayserve:local: host 0.0.0.0 is reachable from other "
     "machines: auth_mode must be token"),
    # structure
    ("local", "platform", "gke", "rayserve:platform: Input should be 'local', 'eks', 'vm' or 'kubernetes'"),
    ("local", "platform", "eks", "rayserve: platform eks needs an `eks` section"),
    ("local", "bogus", 1, "rayserve:bogus:"),
    ("local", "serve.applications", [], "rayserve:serve.applications:"),
    ("local", "serve.applications", ["fruit", "fruit"], "rayserve:serve.applications:"),
    ("local", "serve.applications", ["fruit", "bakery"], "rayserve:serve.applications:"),
    ("local", *_override("fruit", "Banana", num_replicas=1), "rayserve:serve.overrides.fruit.Banana:"),
    ("local", *_override("shop", "Till", num_replicas=1), "rayserve:serve.overrides.shop:"),
    ("local", *_override("fruit", "MangoStand", replicas=2), "rayserve:serve.overrides.fruit.MangoStand.replicas:"),
    ("local", *_override("fruit", "MangoStand", autoscaling_config={"min_replicas": 5, "max_replicas": 2}),
     f"{PRICE}.autoscaling_config"),
    ("local", *_override("fruit", "MangoStand", autoscaling_config={"min_replicas": 1, "max_replica": 2}),
     f"{PRICE}.autoscaling_config.max_replica: unknown key"),
    ("local", "serve.config_path", "serve_apps/missing.yaml", "rayserve:serve.config_path:"),
    ("local", "serve.config_path", "serve_apps", "rayserve:serve.config_path:"),
    ("vm", "vm", _DELETE, "rayserve: platform vm needs a `vm` section"),
    ("vm", *_override("fruit", "MangoStand", ray_actor_options={"num_cpus": 0.1, "runtime_env": {
        "env_vars": {"BLOB": "x" * 9000}}}), "rayserve:serve: the Serve config is"),
]


def _app(i: int, **fields):
    return lambda c: c["applications"][i].update(fields)


def _dep(i: int, j: int, **fields):
    return lambda c: c["applications"][i]["deployments"][j].update(fields)


FRUIT, MANGO = "serve config applications[fruit]", "serve config applications[fruit].deployments[MangoStand]"
SERVE_FILE_CASES = [
    (lambda c: c.update(applicatons=[]), "serve config applicatons: unknown key"),
    (lambda c: c.update(target_capacity="full"), "serve config target_capacity: must be a number"),
    (lambda c: c["http_options"].update(prot=8000), "serve config http_options.prot: unknown key"),
    (lambda c: c["logging_config"].update(colour=True), "serve config logging_config.colour"),
    (_app(0, deployment=[]), f"{FRUIT}.deployment: unknown key"),
    (_dep(0, 1, num_replica=2), f"{MANGO}.num_replica: unknown key"),
    (_dep(0, 1, autoscaling_config={"min_replicas": 1, "max_replica": 3}), f"{MANGO}.autoscaling_config.max_replica: unknown key"),
    (_dep(0, 1, ray_actor_options={"num_cpu": 1}), f"{MANGO}.ray_actor_options.num_cpu: unknown key"),
    (_dep(0, 1, num_replicas=True), f"{MANGO}.num_replicas: must be a number, not a boolean"),
    (_dep(0, 1, max_ongoing_requests="64"), f"{MANGO}.max_ongoing_requests: must be a number, not a string"),
    (_dep(0, 1, max_ongoing_requests=INF), f"{MANGO}.max_ongoing_requests: inf is not a finite number"),
    (_dep(0, 1, user_config={"price": NAN}), f"{MANGO}.user_config.price: nan is not a finite number"),
    (_dep(0, 1, health_check_period_s=True), f"{MANGO}.health_check_period_s: must be a number"),
    (_dep(0, 1, num_replicas=0), f"{MANGO}.num_replicas"),
    (lambda c: c.update(grpc_options={"grpc_servicer_functions": ["evil.module:add_servicer"]}),
     "serve config grpc_options.grpc_servicer_functions[0]: 'evil.module:add_servicer' must import from the bundled"),
    (lambda c: c.update(tracing_config={"enabled": True, "exporter_import_path": "evil:exporter", "sampling_ratio": 1.0}),
     "serve config tracing_config.exporter_import_path:"),
    (_dep(0, 1, request_router_config={"request_router_class": "evil.router:Router"}),
     f"{MANGO}.request_router_config.request_router_class:"),
    (_dep(0, 1, autoscaling_config={"min_replicas": 1, "max_replicas": 2, "policy": {"policy_function": "evil:policy"}}),
     f"{MANGO}.autoscaling_config.policy.policy_function:"),
    (_app(0, autoscaling_policy={"policy_function": "evil:policy"}), f"{FRUIT}.autoscaling_policy.policy_function:"),
    (_dep(0, 1, ray_actor_options={"runtime_env": {"pip": ["torch"]}}), f"{MANGO}.ray_actor_options.runtime_env:"),
    (_app(0, runtime_env={"working_dir": "s3://bucket/apps.zip"}), f"{FRUIT}.runtime_env:"),
    (_app(0, runtime_env={"pip": ["torch"]}), f"{FRUIT}.runtime_env:"),
    (lambda c: c.update(controller_options={"runtime_env": {"py_modules": ["s3://b/m.zip"]}}),
     "serve config controller_options.runtime_env:"),
    (_app(0, import_path="os.path:join"), f"{FRUIT}.import_path: 'os.path:join' must import from the bundled"),
    (_app(0, import_path="serve_apps.fruit:app"), f"{FRUIT}.import_path: 'serve_apps.fruit:app' must import from the bundled"),
    (_app(0, import_path="rayserve_pulumi.serve_apps.fruit:MangoStand"), f"{FRUIT}.import_path: 'rayserve_pulumi.serve_apps.fruit:MangoStand' is a Deployment"),
    (_app(0, import_path="rayserve_pulumi.serve_apps.fruit:nope"), f"{FRUIT}.import_path: 'rayserve_pulumi.serve_apps.fruit' has no attribute 'nope'"),
    (_app(0, import_path="rayserve_pulumi.serve_apps.missing:app"), f"{FRUIT}.import_path: no module 'rayserve_pulumi.serve_apps.missing' in "),
    (lambda c: c["applications"][0]["deployments"].append({"name": "Banana", "num_replicas": 1}),
     "serve config applications[fruit].deployments[Banana]: the application's code has no deployment 'Banana'"),
    (_app(0, route_prefix="fruit"), f"{FRUIT}.route_prefix:"),
    (_app(0, route_prefix="/fruit/"), f"{FRUIT}.route_prefix:"),
    (_app(0, route_prefix="/{fruit}"), f"{FRUIT}.route_prefix:"),
    (_app(0, route_prefix="/fr uit"), f"{FRUIT}.route_prefix:"),
    (_app(1, route_prefix="/fruit"), 'duplicate applications for route prefix "/fruit"'),
    (_app(1, name="fruit"), "duplicate"),
    (lambda c: c.update(applications=[]), "serve config applications: at least one application is required"),
    (lambda c: c.update(proxy_location="Everywhere"), "serve config proxy_location"),
]
RAW_FILE_CASES = [
    (b"applications:\n  - name: fruit\n    name: calc\n", "rayserve:serve.config_path:", "duplicate key 'name'"),
    (b"\xff\xfe not utf-8", "rayserve:serve.config_path:", "is not UTF-8 text"),
    (b"".join([b"a: &a [x,x,x,x,x,x,x,x,x]\n"] + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode()
                                                   for p, c in zip("abcdefgh", "bcdefghi")]),
     "rayserve:serve.config_path:", "expands to more than"),
    (b"applications: [fruit\n", "rayserve:serve.config_path:", "not valid YAML (line 2"),
    (b"- just\n- a list\n", "rayserve:serve.config_path:", "must hold a mapping"),
]
VALID_VARIANTS = [
    # as `pulumi config set` writes them: numbers as decimal strings, booleans as "true"/"false"
    ("local", "local.num_cpus", "4"),
    ("local", "local.deploy_timeout_s", "1.5"),
    ("local", "local.deploy_timeout_s", "90"),
    ("dev", "eks.node_groups.0.desired_size", "2"),
    ("local", *_override("fruit", "MangoStand", num_replicas="3")),
    ("local", "metrics", {"enabled": "false"}),
    ("vm", "vm.ssm_session_access", "false"),
    ("dev", "ray_service.head.cpu", "1500m"),
    ("dev", "ray_service.head.memory", "3Gi"),
    ("vm", "vm.allowed_cidrs", ["203.0.113.0/24", "198.51.100.7/32"]),
    ("dev", "image", {"uri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/apps@" + DIGEST}),
    ("dev", "image", {"uri": "localhost:5000/team/apps:1.2.3"}),
    ("dev", "eks.node_groups.0.labels", {"example.com/team": "ml", "tier": ""}),
    ("vm", "vm.s3_bucket_arn", "arn:aws:s3:::my-model-bucket"),
    ("vm", "vm.ami_id", "ami-0123456789abcdef0"),
    ("local", "serve.http_port", 8001),
    ("local", "local.ray_client_port", 10001),
    ("local", "serve", {**stack_values("local")["serve"], "proxy": "default", "throughput_optimized": False,
                        "http_port": 30500}),  # no direct ingress: its ranges are free
    ("local", "local.num_gpus", 1),
    ("vm", "tags", {"cost-center": "ml/42", "owner": "team@example.com"}),
    ("dev", "ray_service.upgrade_strategy", "None"),
    ("local", "rollout", {"steps": [10, 100], "watch_s": 5, "max_error_rate": 0.05, "min_requests": 20}),
    ("local", "rollout.enabled", False),
    ("local", *_override("fruit", "MangoStand", num_replicas="auto")),
    ("local", *_override("fruit", "MangoStand", user_config={"price": 2.5}, health_check_period_s=2)),
]


def _expect_failure(values: dict, stack: str, expected: str, tmp_path: Path, capsys) -> None:
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in values.items()}}))
    assert cli.main(["validate", str(stack_file), "--program-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert all(line.startswith(f"{stack_file}: ") for line in err.splitlines()), err  # one line per error
    declared = Rendered()
    with pytest.raises(ConfigError) as info:
        render(values, stack, into=declared)
    assert expected in str(info.value), str(info.value)
    assert declared.resources == [], "a bad config must not declare any resource"


@pytest.mark.parametrize("stack,path,value,expected", STACK_CASES,
                         ids=[f"{c[0]}:{c[1]}={c[2]!r}"[:70] for c in STACK_CASES])
def test_bad_stack_config_fails_naming_the_key(stack, path, value, expected, tmp_path, capsys):
    values = stack_values(stack)
    if path == "serve.config_path" and not value.startswith("/"):
        value = str(Path(__file__).resolve().parents[2] / value)  # the checkout's serve_apps/
    _expect_failure(_set(values, path, value), stack, expected, tmp_path, capsys)


@pytest.mark.parametrize("mutate,expected", SERVE_FILE_CASES, ids=[c[1][-50:] for c in SERVE_FILE_CASES])
def test_bad_serve_config_fails_naming_the_field(tmp_path, capsys, mutate, expected):
    config = copy.deepcopy(BASE_SERVE)
    mutate(config)
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    values = _set(_set(stack_values("local"), "serve.config_path", str(path)), "serve.overrides", {})
    _expect_failure(values, "local", expected, tmp_path, capsys)


@pytest.mark.parametrize("raw,key,expected", RAW_FILE_CASES, ids=[c[2] for c in RAW_FILE_CASES])
def test_unreadable_serve_config_files_fail_in_one_line(tmp_path, capsys, raw, key, expected):
    path = tmp_path / "serve_config.yaml"
    path.write_bytes(raw)
    values = _set(stack_values("local"), "serve.config_path", str(path))
    _expect_failure(values, "local", f"{key} ", tmp_path, capsys)
    _expect_failure(values, "local", expected, tmp_path, capsys)


def test_every_error_of_a_stack_is_reported_at_once(tmp_path, capsys):
    values = _set(_set(stack_values("dev"), "ray_service.namespace", "Ray"), "ray_service.head.cpu", "2 cores")
    values = _set(values, "eks.node_groups.0.desired_size", True)
    _expect_failure(values, "dev", "rayserve:ray_service.namespace:", tmp_path, capsys)
    lines = str(pytest.raises(ConfigError, render, values, "dev").value).splitlines()
    assert {line.split(":")[1] for line in lines} >= {"ray_service.namespace", "ray_service.head.cpu",
                                                     "eks.node_groups[cpu].desired_size"}


@pytest.mark.parametrize("stack,path,value", VALID_VARIANTS, ids=[f"{c[0]}:{c[1]}={c[2]!r}"[:70] for c in VALID_VARIANTS])
def test_valid_variants_are_accepted(stack, path, value, tmp_path, capsys):
    values = _set(stack_values(stack), path, value)
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in values.items()}}))
    assert cli.main(["validate", str(stack_file), "--program-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    assert render(values, stack).resources


def test_corpus_covers_at_least_a_hundred_cases():
    assert len(STACK_CASES) + len(SERVE_FILE_CASES) + len(RAW_FILE_CASES) >= 100


def test_the_head_fits_without_the_autoscaler_sidecar_when_autoscaling_is_off(tmp_path, capsys):
    values = _set(_set(stack_values("prod"), "ray_service.head.cpu", "1700m"), "ray_service.enable_autoscaling", False)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"rayserve:{k}": v for k, v in values.items()}}))
    assert cli.main(["validate", str(stack_file), "--program-dir", str(tmp_path)]) == 0, capsys.readouterr().err
