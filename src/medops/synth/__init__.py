"""Realistic synthetic clinical, claims and engagement data with drift scenarios.

The generator and writers load on first use (they bring NumPy and pandas); the scenario
and format names are in ``medops.synth.names``.
"""

from __future__ import annotations

from medops.lazy import members
from medops.synth.names import FORMATS, SCENARIOS

__all__ = ["FORMATS", "SCENARIOS", "SynthData", "generate", "write"]

__getattr__ = members(__name__, {"SynthData": "generator", "generate": "generator", "write": "writers"})
