"""Validate the stack's config against the app's code, then declare its platform."""
from pathlib import Path

from rayserve_pulumi.program import build

build(program_dir=Path(__file__).resolve().parent)
