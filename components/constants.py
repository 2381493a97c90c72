"""One definition per fact: versions, images, ports and labels every part of the package shares.

Standard library only: the node agent ships this module onto VMs beside itself.
"""
from __future__ import annotations

__all__ = [
    "RAY_VERSION", "RAY_CPU_IMAGE", "RAY_GPU_IMAGE", "KUBERAY_CHART", "KUBERAY_CHART_VERSION",
    "KUBERAY_CHART_REPOSITORY", "REDIS_IMAGE", "KUBERAY_OPERATOR_DIGESTS", "KUBE_PROMETHEUS_STACK_CHART",
    "KUBE_PROMETHEUS_STACK_VERSION",
    "KUBE_PROMETHEUS_STACK_REPOSITORY", "NVIDIA_DEVICE_PLUGIN_CHART", "NVIDIA_DEVICE_PLUGIN_VERSION",
    "NVIDIA_DEVICE_PLUGIN_REPOSITORY", "LB_CONTROLLER_CHART", "LB_CONTROLLER_VERSION", "EKS_CHARTS_REPOSITORY",
    "KARPENTER_CHART_REPOSITORY", "ENVOY_GATEWAY_CHART", "ENVOY_GATEWAY_VERSION", "ENVOY_GATEWAY_REPOSITORY",
    "ENVOY_GATEWAY_CONTROLLER", "KARPENTER_VERSION", "KARPENTER_K8S_VERSIONS", "KARPENTER_AMI_ALIAS",
    "DO_NOT_DISRUPT", "PROMETHEUS_IMAGE", "GRAFANA_IMAGE", "GCS_PORT", "DASHBOARD_PORT",
    "CLIENT_PORT", "METRICS_PORT", "DASHBOARD_AGENT_LISTEN_PORT", "DASHBOARD_AGENT_GRPC_PORT",
    "RUNTIME_ENV_AGENT_PORT", "AUTOSCALER_METRICS_PORT", "DASHBOARD_METRICS_PORT", "RAY_METRICS_PORTS",
    "SERVE_PORT", "GCS_REDIS_PORT", "REDIS_PORT",
    "HAPROXY_STATS_PORT", "HAPROXY_METRICS_PORT", "FALLBACK_PROXY_PORT", "FALLBACK_PROXY_GRPC_PORT",
    "PROMETHEUS_PORT", "GRAFANA_PORT", "TLS_PORT", "TLS_POLICY", "INTERNAL_PORTS", "NODE_GROUP_LABEL",
    "ACCELERATOR_LABEL", "SERVICE_LABEL", "NODE_TYPE_LABEL", "GPU_RESOURCE", "MODEL_CACHE_PATH", "SERVE_PROXY_ENV",
    "DIRECT_INGRESS_DRAIN_ENV", "RAY_HAPROXY_SOCKET", "SERVE_THROUGHPUT_ENV", "ROLLOUT_ROLLED_BACK",
    "ROLLOUT_NOTHING_TO_STEP",
    "SPEC_VERSION_ANNOTATION", "ROLLOUT_VERDICT_ANNOTATION", "ROLLOUT_REASON_ANNOTATION",
    "WORKER_PORTS", "DIRECT_INGRESS_HTTP_PORTS", "DIRECT_INGRESS_GRPC_PORTS",
]

RAY_VERSION = "2.60.0"
RAY_CPU_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311-cpu"
RAY_GPU_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311-gpu"
KUBERAY_CHART = "kuberay-operator"
KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_CHART_REPOSITORY = "https://ray-project.github.io/kuberay-helm/"
# Images the package runs itself are pinned by digest (the tag stays for the reader; a digest wins where both
# are given), as public pins of those tags give them; not checked against the registries from here
# (`docker buildx imagetools inspect IMAGE` prints a tag's). Ray's images above, the base of the Serve image
# the stack builds (pinned by its own digest), are pinned by version.
REDIS_IMAGE = "redis:7.4.2-alpine@sha256:02419de7eddf55aa5bcf49efb74e88fa8d931b4d77c07eff8a6b2144472b6952"
# The KubeRay operator's image by chart version (its chart names the image by tag only; the tag value carries
# the digest). A chart version not listed runs its tag.
KUBERAY_OPERATOR_DIGESTS = {"1.7.0": "sha256:4a779237ef1c5262a63840ccf42d0d67f0b74e911158fbcaee4478fb1560bce6"}
# Monitoring: the kube-prometheus-stack chart (EKS) and the images a VM head runs.
KUBE_PROMETHEUS_STACK_CHART = "kube-prometheus-stack"
KUBE_PROMETHEUS_STACK_VERSION = "91.5.0"
KUBE_PROMETHEUS_STACK_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
# The AL2023 NVIDIA AMI ships the driver and the container toolkit, not the device plugin that advertises
# nvidia.com/gpu to the kubelet (AWS' EKS GPU AMI documentation): the EKS platform installs it.
NVIDIA_DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
NVIDIA_DEVICE_PLUGIN_VERSION = "0.18.0"
NVIDIA_DEVICE_PLUGIN_REPOSITORY = "https://nvidia.github.io/k8s-device-plugin"
# The AWS Load Balancer Controller builds the Serve Service's NLB (IP targets, a security group on the NLB);
# its IAM policy is upstream's docs/install/iam_policy.json of the same release (aws/eks/lbc-iam-policy.json).
LB_CONTROLLER_CHART = "aws-load-balancer-controller"
LB_CONTROLLER_VERSION = "3.5.0"
EKS_CHARTS_REPOSITORY = "https://aws.github.io/eks-charts"
# Karpenter adds and removes EKS nodes as Ray's autoscaler adds and removes pods. Its chart and its CRD chart
# (the CRDs as templates, so a version bump upgrades them) come from the same OCI repository. The Kubernetes
# versions are those both its compatibility matrix and the pinned AMI release cover.
KARPENTER_CHART_REPOSITORY = "oci://public.ecr.aws/karpenter"
# Envoy Gateway (a Gateway API controller for KubeRay's incremental upgrade, where the cluster has none): its
# chart and the controllerName its values.yaml sets (config.envoyGateway.gateway.controllerName)
ENVOY_GATEWAY_CHART = "gateway-helm"
ENVOY_GATEWAY_VERSION = "v1.8.3"
ENVOY_GATEWAY_REPOSITORY = "oci://docker.io/envoyproxy"
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
KARPENTER_VERSION = "1.14.1"
KARPENTER_K8S_VERSIONS = ("1.30", "1.31", "1.32", "1.33", "1.34")
KARPENTER_AMI_ALIAS = "al2023@v20260714"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"  # a pod annotation: Karpenter never drains its node voluntarily
PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0@sha256:63805ebb8d2b3920190daf1cb14a60871b16fd38bed42b857a3182bc621f4996"
GRAFANA_IMAGE = "grafana/grafana-oss:12.1.1@sha256:a1701c2180249361737a99a01bc770db39381640e4d631825d38ff4535efa47d"

# Ray's ports (Ray defaults; the stacks keep them).
GCS_PORT = 6379
DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
METRICS_PORT = 8080
DASHBOARD_AGENT_LISTEN_PORT = 52365  # the dashboard agent's HTTP port (Ray's default)
# The dashboard agent's gRPC port and the runtime-env agent's: Ray picks free ones by default, and then the
# raylet waits a fixed 15 s for each agent to publish its port in a file before it gives up and the node fails
# to start (Ray 2.60's NodeManager); a loaded machine's agent can need longer to import Ray. Given ports, the
# raylet starts at once. The local head's (rayserve:local) and a VM node's; outside the kernel's ephemeral range.
DASHBOARD_AGENT_GRPC_PORT, RUNTIME_ENV_AGENT_PORT = 8266, 8267
# The head's autoscaler and dashboard export metrics on these fixed ports (Ray's defaults; its environment
# variables AUTOSCALER_METRIC_PORT and DASHBOARD_METRIC_PORT move them): two heads on one machine need others.
AUTOSCALER_METRICS_PORT, DASHBOARD_METRICS_PORT = 44217, 44227
# Ray's metrics endpoints as KubeRay names them: every node's metrics agent, the head's autoscaler and dashboard.
RAY_METRICS_PORTS = {"metrics": METRICS_PORT, "as-metrics": AUTOSCALER_METRICS_PORT,
                     "dash-metrics": DASHBOARD_METRICS_PORT}
SERVE_PORT = 8000
GCS_REDIS_PORT = 6380  # the Redis behind GCS fault tolerance on a VM head (6379 is the GCS itself)
REDIS_PORT = 6379  # the Redis Service on Kubernetes (its own pod, so Redis' own default)
# Ray's HAProxy ingress binds its stats page and Prometheus exporter on every interface (Ray's template): Ray's defaults.
HAPROXY_STATS_PORT = 8404
HAPROXY_METRICS_PORT = 9101
# Serve's fallback proxy beside HAProxy (HAProxy's backup server; the gRPC one only with gRPC on): Ray's defaults.
FALLBACK_PROXY_PORT = 8500
FALLBACK_PROXY_GRPC_PORT = 9500
PROMETHEUS_PORT = 9090  # Prometheus' default; the local platform's and a VM head's (127.0.0.1 there)
GRAFANA_PORT = 3000  # Grafana's default; a VM head's (127.0.0.1) and the port-forwards' local port
TLS_PORT = 443  # a load balancer's listener when it terminates TLS in front of Serve (EKS and VM)
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # the AWS load balancers' TLS policy: TLS 1.3 and 1.2 only
# Ports that stay inside a cluster: never opened to the world, never a Serve port.
INTERNAL_PORTS = {GCS_PORT: "GCS", DASHBOARD_PORT: "dashboard", CLIENT_PORT: "Ray client",
                  GCS_REDIS_PORT: "GCS Redis", METRICS_PORT: "metrics", PROMETHEUS_PORT: "Prometheus",
                  GRAFANA_PORT: "Grafana", DASHBOARD_AGENT_LISTEN_PORT: "dashboard agent",
                  DASHBOARD_AGENT_GRPC_PORT: "dashboard agent gRPC", RUNTIME_ENV_AGENT_PORT: "runtime-env agent"}

# Labels and the Kubernetes resource name of a GPU.
NODE_GROUP_LABEL = "rayserve.io/node-group"  # on every EKS node; Ray pods select their group by it
ACCELERATOR_LABEL = "rayserve.io/accelerator"
SERVICE_LABEL = "rayserve.io/service"  # on every pod of one RayService
NODE_TYPE_LABEL = "ray.io/node-type"  # KubeRay labels every pod it creates: head or worker
# A gated RayService (kuberay.rollout_gate): the rendered spec's version, which `pulumi up` waits to see
# "promoted-<version>" under the verdict, and why the gate rolled a version back
SPEC_VERSION_ANNOTATION = "rayserve.io/spec-version"
ROLLOUT_VERDICT_ANNOTATION = "rayserve.io/rollout"
ROLLOUT_REASON_ANNOTATION = "rayserve.io/rollout-reason"
GPU_RESOURCE = "nvidia.com/gpu"

# Where the Serve image keeps Hugging Face weights (the model-cache volume on EKS and VMs).
MODEL_CACHE_PATH = "/home/ray/model-cache"

# Environment of every Ray process selecting Serve's ingress per `rayserve:serve.proxy` ("haproxy": Ray's
# HAProxy ingress), and Serve's throughput-optimized settings per `rayserve:serve.throughput_optimized`
# (gRPC between deployments, direct ingress, GC frozen after start-up; user code stays on its own thread,
# so a blocking replica never stalls its event loop). bench/serve_bench.py measures each.
SERVE_PROXY_ENV: dict[str, dict[str, str]] = {"default": {}, "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"}}
# Under direct ingress Ray holds each stopping ingress replica open at least 30 s, for a load balancer in front
# of the replicas' own ports to deregister them; the package never puts one there. Per `serve.proxy`:
# - Serve's own proxy never uses those ports (Serve's routers drop a stopping replica at once): 2 s.
# - Serve's HAProxy does, and stops sending to a replica once its manager reloads it, within 2 s of the
#   controller's broadcast under a rollout's load on a 2-core machine (Ray's serve_haproxy_update_latency_s):
#   5 s. After it the replica refuses new connections and an HAProxy process still sending there retries
#   another replica (Ray's drain behind HAProxy).
# A stopping replica still finishes every request it holds; every code update, rollout and rollback of an
# ingress deployment is about 25 s shorter per roll than with Ray's 30 s.
DIRECT_INGRESS_DRAIN_ENV: dict[str, dict[str, str]] = {
    "default": {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"},
    "haproxy": {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5"}}
# The admin socket path Ray gives Serve's HAProxy when RAY_SERVE_HAPROXY_SOCKET_PATH is unset (each node's in a
# folder named by its node ID beside it): where a gated rollout holds it (rollout.ingress_hold).
RAY_HAPROXY_SOCKET = "/tmp/haproxy-serve/admin.sock"
SERVE_THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}

# `python -m rayserve_pulumi.rollout.stepped`'s exit statuses the VM node agent reads (0: rolled out, 1: failed).
ROLLOUT_ROLLED_BACK, ROLLOUT_NOTHING_TO_STEP = 3, 4

# Ray's default port range for worker processes (`ray start --min-worker-port/--max-worker-port`).
WORKER_PORTS = range(10002, 20000)
# Serve's direct ingress (on under the HAProxy ingress and under throughput-optimized Serve): each replica binds
# an HTTP and a gRPC port from these ranges (Ray's RAY_SERVE_DIRECT_INGRESS_{MIN,MAX}_{HTTP,GRPC}_PORT, inclusive).
DIRECT_INGRESS_HTTP_PORTS = range(30000, 31001)
DIRECT_INGRESS_GRPC_PORTS = range(40000, 41001)
