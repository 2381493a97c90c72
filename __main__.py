"""Pulumi entry point: validate the stack's config, then declare its platform."""
from pathlib import Path

from rayserve_pulumi.program import build

build(program_dir=Path(__file__).resolve().parent)
