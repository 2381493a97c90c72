"""Pulumi entry point: validate the stack's config, then declare its platform."""
from components.program import build

build()
