"""Alert rules for Serve, as Prometheus rule groups. Standard library only (the VM node agent writes them).

Ray exports Serve's state as gauges with numeric codes (ray/serve/_private/application_state.py and
deployment_state.py: application 1=DEPLOY_FAILED, 2=UNHEALTHY, 6=RUNNING; deployment 1=DEPLOY_FAILED,
2=UNHEALTHY, 6=HEALTHY) and requests as counters from Serve's proxies.
"""
from __future__ import annotations

__all__ = ["GROUP", "ERROR_RATIO", "ALERTS", "rule_groups"]

GROUP = "rayserve"
ERROR_RATIO = 0.05  # more than 5% of an application's HTTP requests answered with 5xx

ALERTS = [
    {"alert": "RayServeApplicationUnhealthy",
     "expr": "max by (application) (ray_serve_application_status) <= 2",
     "for": "2m", "labels": {"severity": "critical"},
     "annotations": {"summary": "Serve application {{ $labels.application }} is DEPLOY_FAILED or UNHEALTHY",
                     "description": "`rayserve status` (local) or the RayService's status names the failing deployment."}},
    {"alert": "RayServeDeploymentUnhealthy",
     "expr": "max by (application, deployment) (ray_serve_deployment_status) <= 2",
     "for": "2m", "labels": {"severity": "warning"},
     "annotations": {"summary": "Deployment {{ $labels.application }}.{{ $labels.deployment }} is unhealthy"}},
    {"alert": "RayServeReplicaHealthChecksFailing",
     "expr": "sum by (application, deployment) (increase(ray_serve_health_check_failures_total[5m])) > 0",
     "for": "5m", "labels": {"severity": "warning"},
     "annotations": {"summary": "Replicas of {{ $labels.application }}.{{ $labels.deployment }} fail health checks"}},
    {"alert": "RayServeRequestsFailing",
     "expr": (f"sum by (application) (rate(ray_serve_num_http_error_requests_total{{error_code=~\"5..\"}}[5m])) / "
              f"sum by (application) (rate(ray_serve_num_http_requests_total[5m])) > {ERROR_RATIO}"),
     "for": "5m", "labels": {"severity": "critical"},
     "annotations": {"summary": f"More than {ERROR_RATIO:.0%} of {{{{ $labels.application }}}}'s requests fail (5xx)"}},
    {"alert": "RayServeNoHealthyReplicas",
     "expr": "sum by (application, deployment) (ray_serve_deployment_replica_healthy) == 0",
     "for": "1m", "labels": {"severity": "critical"},
     "annotations": {"summary": "{{ $labels.application }}.{{ $labels.deployment }} has no healthy replica"}},
]


def rule_groups(interval_s: int = 30) -> dict:
    """The `groups:` document Prometheus loads (and a PrometheusRule's spec)."""
    return {"groups": [{"name": GROUP, "interval": f"{interval_s}s", "rules": [dict(a) for a in ALERTS]}]}
