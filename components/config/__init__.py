"""Shared config and validation: the stack config (`rayserve:*` keys) and the Serve config.

Everything a user writes passes through here before any resource is declared; a bad value raises
`ConfigError`, whose message names the key and what would be accepted.
"""
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.config.serve import build_serve_config, serve_port
from rayserve_pulumi.config.sources import load_stack_config, parse_stack_config, read_stack_file
from rayserve_pulumi.config.stack import (
    CheckpointSettings, DeploymentOverride, EksSettings, ExternalRedis, HeadSettings, ImageSettings, KubeRaySettings, LocalSettings,
    MetricsSettings,
    NodeGroup, PodResources, RayServiceSettings, ServeSettings, StackConfig, VmSettings, WorkerGroup,
)

__all__ = [
    "CheckpointSettings", "ConfigError", "DeploymentOverride", "EksSettings", "ExternalRedis", "HeadSettings", "ImageSettings",
    "KubeRaySettings", "LocalSettings", "MetricsSettings", "NodeGroup", "PodResources", "RayServiceSettings", "ServeSettings",
    "StackConfig", "VmSettings", "WorkerGroup", "build_serve_config", "load_stack_config", "parse_stack_config",
    "read_stack_file", "serve_port",
]
