"""Realistic synthetic clinical, claims and engagement data with drift scenarios.

The generator and writers load on first use (they bring NumPy and pandas); the scenario
and format names are in ``medops.synth.names``.
"""

from __future__ import annotations

from typing import Any

from medops.synth.names import FORMATS, SCENARIOS

__all__ = ["FORMATS", "SCENARIOS", "SynthData", "generate", "write"]


def __getattr__(name: str) -> Any:
    if name in ("SynthData", "generate"):
        from medops.synth import generator

        return getattr(generator, name)
    if name == "write":
        from medops.synth.writers import write

        return write
    raise AttributeError(f"module 'medops.synth' has no attribute {name!r}")
