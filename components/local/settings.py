"""The `local` platform's settings (`rayserve:local`): the Ray head on this machine, its host and ports."""
from __future__ import annotations

import ipaddress
from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from rayserve_pulumi.config.types import Strict
from rayserve_pulumi.constants import (
    DASHBOARD_AGENT_GRPC_PORT, DASHBOARD_AGENT_LISTEN_PORT, DASHBOARD_METRICS_PORT, DASHBOARD_PORT,
    FALLBACK_PROXY_GRPC_PORT, FALLBACK_PROXY_PORT, GCS_PORT, HAPROXY_METRICS_PORT, HAPROXY_STATS_PORT, METRICS_PORT,
    RUNTIME_ENV_AGENT_PORT,
)

__all__ = ["LocalSettings"]


class LocalSettings(Strict):
    """The `local` platform: a Ray head on this machine."""

    host: str = Field("127.0.0.1", description="IP address the dashboard, Serve's proxy and the Ray node listen on; "
                      "a non-loopback address needs auth_mode token")
    gcs_port: int = Field(GCS_PORT, ge=1, le=65535, description="Ray GCS port")
    dashboard_port: int = Field(DASHBOARD_PORT, ge=1, le=65535, description="dashboard and Serve REST API port")
    dashboard_metrics_port: int = Field(DASHBOARD_METRICS_PORT, ge=1024, le=65535, description="where the dashboard "
                                        "exports its own metrics (Ray's fixed default); two local stacks need "
                                        "different ports, or one's Prometheus reads the other's dashboard")
    haproxy_stats_port: int = Field(HAPROXY_STATS_PORT, ge=1024, le=65535, description="HAProxy ingress' stats page "
                                    "(Ray binds it on every interface); two local stacks need different ports")
    haproxy_metrics_port: int = Field(HAPROXY_METRICS_PORT, ge=1024, le=65535, description="HAProxy ingress' "
                                      "Prometheus exporter (every interface, like the stats page)")
    fallback_proxy_port: int = Field(FALLBACK_PROXY_PORT, ge=1024, le=65535, description="HTTP port of Serve's "
                                     "fallback proxy, HAProxy's backup server; two local stacks need different ports "
                                     "(with one port, one stack's HAProxy could fall back to the other's apps)")
    fallback_proxy_grpc_port: int = Field(FALLBACK_PROXY_GRPC_PORT, ge=1024, le=65535, description="its gRPC port "
                                          "(bound only when the Serve config turns gRPC on)")
    metrics_export_port: int = Field(METRICS_PORT, ge=1024, le=65535, description="where the head's metrics agent "
                                     "serves Ray's and Serve's metrics to Prometheus")
    dashboard_agent_listen_port: int = Field(DASHBOARD_AGENT_LISTEN_PORT, ge=1024, le=65535, description="the "
                                             "dashboard agent's HTTP port (Ray's default); two local stacks need "
                                             "different ports, or one's dashboard reaches the other's agent")
    dashboard_agent_grpc_port: int = Field(DASHBOARD_AGENT_GRPC_PORT, ge=1024, le=65535, description="the dashboard "
                                           "agent's gRPC port. Given, like every agent port: with a port Ray picks, "
                                           "the raylet gives the agent 15 s to publish it, which an agent starting "
                                           "on a loaded machine misses, and the head fails")
    runtime_env_agent_port: int = Field(RUNTIME_ENV_AGENT_PORT, ge=1024, le=65535, description="the runtime-env "
                                        "agent's port")
    ray_client_port: Optional[int] = Field(None, ge=1024, le=65535, description="the Ray Client server's port "
                                           "(ray://); unset: no Ray Client server (nothing of the stack uses it)")
    haproxy_threads: int = Field(1, ge=1, le=64, description="threads of Ray's HAProxy ingress (Ray's default 4): on one "
                                 "machine its cores serve the Python replicas better (README Performance)")
    num_cpus: int = Field(4, gt=0, le=1024, description="logical CPUs Ray may schedule; also how many Ray "
                          "workers may start at once")
    num_gpus: int = Field(0, ge=0, le=64, description="GPUs Ray may schedule (0: Serve may not ask for any)")
    deploy_timeout_s: float = Field(300, gt=0, description="how long `up` waits for every app to be RUNNING")
    auth_mode: Literal["token", "disabled"] = Field("token", description="Ray token authentication")
    models_dir: str = Field(".models", min_length=1, description="folder of model directories the text app may load "
                            "by name (relative to the program's directory; set-up generates tiny-t5 there)")

    # the ports this machine's Ray head always listens on by the stack's choice (ray_client_port: when set)
    PORT_KEYS: ClassVar[tuple[str, ...]] = ("gcs_port", "dashboard_port", "dashboard_metrics_port", "haproxy_stats_port",
                                            "haproxy_metrics_port", "fallback_proxy_port", "fallback_proxy_grpc_port",
                                            "metrics_export_port", "dashboard_agent_listen_port",
                                            "dashboard_agent_grpc_port", "runtime_env_agent_port")

    def listening_ports(self) -> dict[str, int]:
        """Every port the head listens on by the stack's choice, by key."""
        keys = self.PORT_KEYS + (("ray_client_port",) if self.ray_client_port is not None else ())
        return {key: getattr(self, key) for key in keys}

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address (e.g. 127.0.0.1)") from None
        return v

    @model_validator(mode="after")
    def _ports(self):
        if not ipaddress.ip_address(self.host).is_loopback and self.auth_mode != "token":
            raise ValueError(f"host {self.host} is reachable from other machines: auth_mode must be token (an "
                             "unauthenticated dashboard there runs anyone's code through the Jobs API)")
        ports: dict[int, str] = {}
        for key, port in self.listening_ports().items():
            if port in ports:
                raise ValueError(f"{ports[port]} and {key} are both {port}; give each its own port")
            ports[port] = key
        return self
