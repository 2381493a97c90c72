"""What every provider component shares: its `config` validated as a stack, then the platform's own component
declared as its child with the values that come from elsewhere.

No `from __future__ import annotations` here or in a provider component: the provider host reads the
annotations as types."""
from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi

from rayserve_pulumi.aws.network import ExistingNetwork
from rayserve_pulumi.config.errors import ConfigError
from rayserve_pulumi.program import StackConfigError

__all__ = ["ProviderComponent", "existing_network"]


class ProviderComponent(pulumi.ComponentResource):
    """A platform for other languages: outputs `app_urls` and `dashboard`, as the Python component does."""

    PLATFORM = ""  # the registered platform it declares (no annotation: the host would read it as an output)

    # each subclass declares its outputs with their descriptions again: the host reads a class's own source
    app_urls: pulumi.Output[dict[str, str]]
    dashboard: pulumi.Output[str]

    def __init__(self, type_: str, name: str, config: Mapping[str, Any], inputs: dict,
                 opts: Optional[pulumi.ResourceOptions] = None):
        from rayserve_pulumi.config.validate import validate_stack
        from rayserve_pulumi.registry import platform_class

        values = dict(config or {})
        if values.setdefault("platform", self.PLATFORM) != self.PLATFORM:
            raise StackConfigError(f"config.platform: this component declares the {self.PLATFORM} platform")
        supplied = frozenset("image" if key == "image_uri" else key for key, value in inputs.items() if value is not None)
        try:  # before anything is declared; relative paths (serve.app_dir) from the program's folder
            cfg, serve_config = validate_stack(values, Path.cwd(), supplied)
        except ConfigError as exc:
            raise StackConfigError(*exc.lines) from None
        super().__init__(type_, name, None, opts)
        child = platform_class(self.PLATFORM).from_stack(cfg, serve_config, pulumi.ResourceOptions(parent=self),
                                                         Path.cwd(), inputs)
        self.app_urls = child.app_urls
        self.dashboard = child.dashboard
        self.register_outputs({"app_urls": self.app_urls, "dashboard": self.dashboard})


def existing_network(args: Mapping[str, Any]) -> Optional[ExistingNetwork]:
    """The VPC named by `vpc_id` and its subnets, or None (the component creates one)."""
    if args.get("vpc_id") is None:
        return None
    return ExistingNetwork(args["vpc_id"], args.get("private_subnet_ids") or [], args.get("public_subnet_ids") or [])
