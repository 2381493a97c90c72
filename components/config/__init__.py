"""Shared config and validation: the stack config (`rayserve:*` keys) and the Serve config.

Everything a user writes passes through here before any resource is declared; a bad value raises
`ConfigError`, whose message names the key and what would be accepted. Names load on first use, so a module
the stack config itself imports (rollout.settings) can be imported first.
"""
from rayserve_pulumi.lazy import exports

_STACK = "rayserve_pulumi.config.stack"
__all__, __getattr__ = exports(__name__, {
    "ConfigError": "rayserve_pulumi.config.errors",
    "build_serve_config": "rayserve_pulumi.config.serve", "serve_port": "rayserve_pulumi.config.serve",
    **{name: "rayserve_pulumi.config.sources"
       for name in ("load_stack_config", "parse_stack_config", "read_stack_file")},
    **{name: _STACK for name in (
        "CheckpointSettings", "DeploymentOverride", "EksSettings", "ExternalRedis", "HeadSettings", "ImageSettings",
        "KubeRaySettings", "LocalSettings", "MetricsSettings", "NodeGroup", "PodResources", "RayServiceSettings",
        "ServeSettings", "StackConfig", "VmSettings", "WorkerGroup")},
})
