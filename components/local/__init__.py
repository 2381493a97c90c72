"""The `local` platform: the same Serve apps on one machine, through a Pulumi dynamic provider."""
from rayserve_pulumi.local.platform import LocalPlatform, LocalPlatformArgs
from rayserve_pulumi.local.provider import LocalRayServe, LocalServeProvider, provider_inputs

__all__ = ["LocalPlatform", "LocalPlatformArgs", "LocalRayServe", "LocalServeProvider", "provider_inputs"]
