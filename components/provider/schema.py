"""The component provider's Pulumi package schema, as the provider host infers it from the components' args
(`python -m rayserve_pulumi.provider.schema` prints it; tests/provider/schema.json is the reviewed copy)."""
import json

from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema

from rayserve_pulumi import __version__
from rayserve_pulumi.config import StackConfig  # noqa: F401  (first, as every entry point: it loads the platforms' settings)
from rayserve_pulumi.registry import provider_components

__all__ = ["NAME", "schema"]

NAME = "rayserve"


def schema() -> dict:
    """The schema `pulumi package add` generates SDKs from (what the host serves through GetSchema)."""
    result = Analyzer(NAME).analyze(provider_components())
    return generate_schema(NAME, __version__, None, result["component_definitions"], result["type_definitions"],
                           sorted(result["dependencies"], key=lambda d: f"{d.name}{d.version}")).to_json()


if __name__ == "__main__":
    print(json.dumps(schema(), indent=2, sort_keys=True))
