"""Training: experiment tracking, trainers, splits, tuning, reproduction.

Members load on first use: a model's input schema or trainers can be imported without the
tracking store's database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medops.lazy import members

if TYPE_CHECKING:
    from medops.training.tracking import MetricFilter, Run, RunInfo, Tracker

__all__ = ["MetricFilter", "Run", "RunInfo", "Tracker"]

__getattr__ = members(__name__, dict.fromkeys(__all__, "tracking"))
