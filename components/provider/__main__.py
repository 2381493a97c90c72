"""The component provider's entry point: Pulumi's Python component provider host serving every platform's
provider component (`pulumi package add` runs it; see docs/other-languages.md)."""
from pulumi.provider.experimental import component_provider_host

from rayserve_pulumi import __version__
from rayserve_pulumi.config import StackConfig  # noqa: F401  (first, as every entry point: it loads the platforms' settings)
from rayserve_pulumi.provider.schema import NAME
from rayserve_pulumi.registry import provider_components

__all__ = []

if __name__ == "__main__":
    component_provider_host(components=provider_components(), name=NAME, version=__version__)
