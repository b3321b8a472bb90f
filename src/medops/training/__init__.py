"""Training: experiment tracking, trainers, splits, tuning, reproduction.

Members load on first use: a model's input schema or trainers can be imported without the
tracking store's database layer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medops.training.tracking import MetricFilter, Run, RunInfo, Tracker, start_run

__all__ = ["MetricFilter", "Run", "RunInfo", "Tracker", "start_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("medops.training.tracking"), name)
    raise AttributeError(f"module 'medops.training' has no attribute {name!r}")
