"""Realistic synthetic clinical, claims and engagement data with drift scenarios."""

from medops.synth.generate import SCENARIOS, SynthData, generate
from medops.synth.write import FORMATS, write

__all__ = ["FORMATS", "SCENARIOS", "SynthData", "generate", "write"]
