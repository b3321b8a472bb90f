"""One window's rows reduced to what its verdicts need, chunk by chunk, on the reference's grids.

A window is fed in chunks of columns (NumPy arrays or anything array-like: a pyarrow batch's
columns, a DataFrame's), so it never holds its rows; summaries of two halves merge into the
summary of the whole, which is how Dask workers' partial windows are combined too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from medops.monitoring.profile import ReferenceProfile
from medops.monitoring.summary import CategorySummary, NumericSummary
from medops.monitoring.units import UnitProbe
from medops.training.input_schema import as_numbers


@dataclass
class Window:
    """The running summary of one window's rows against one reference profile."""

    numeric: dict[str, NumericSummary] = field(default_factory=dict)
    categories: dict[str, CategorySummary] = field(default_factory=dict)
    units: dict[str, UnitProbe] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)
    score: NumericSummary | None = None
    above_threshold: int = 0
    threshold: float = 0.5
    rows: int = 0

    @classmethod
    def start(cls, profile: ReferenceProfile) -> Window:
        window = cls(threshold=profile.threshold)
        for name, feature in profile.features.items():
            if feature.numeric is not None:
                window.numeric[name] = NumericSummary.empty(feature.numeric.edges)
                window.out_of_range[name] = 0
                if feature.plausible is not None:
                    window.units[name] = UnitProbe(feature.plausible, feature.numeric.edges)
            else:
                window.categories[name] = CategorySummary()
        assert profile.score.numeric is not None
        window.score = NumericSummary.empty(profile.score.numeric.edges)
        return window

    def add(self, columns: Mapping[str, Any], scores: Any, profile: ReferenceProfile) -> None:
        """Count one chunk: ``columns`` by feature name (a feature absent from them is all missing)."""
        size = len(scores)
        self.rows += size

        def count(name: str) -> int:  # one feature's summary, touched by this task alone
            values = _numbers(columns.get(name), size)
            self.numeric[name].add(values)
            if name in self.units:
                self.units[name].add(values)
            served = profile.features[name].served_range
            if served is None:
                return 0
            with np.errstate(invalid="ignore"):
                return int(np.sum((values < served[0]) | (values > served[1])))

        # NumPy's searchsorted and bincount let go of the interpreter: the features are counted
        # on two threads, a third less time on two cores (the grid lookups are most of a window's cost)
        for name, outside in zip(self.numeric, _pool().map(count, self.numeric), strict=True):
            self.out_of_range[name] += outside
        for name, categories in self.categories.items():
            categories.add_counts(_counts(columns.get(name), size))
        p = np.asarray(scores, dtype=float)
        assert self.score is not None
        self.score.add(p)
        self.above_threshold += int(np.sum(p >= self.threshold))

    def merge(self, other: Window) -> Window:
        assert self.score is not None and other.score is not None
        return Window(
            {k: v.merge(other.numeric[k]) for k, v in self.numeric.items()},
            {k: v.merge(other.categories[k]) for k, v in self.categories.items()},
            {k: v.merge(other.units[k]) for k, v in self.units.items()},
            {k: v + other.out_of_range[k] for k, v in self.out_of_range.items()},
            self.score.merge(other.score),
            self.above_threshold + other.above_threshold,
            self.threshold,
            self.rows + other.rows,
        )


def _pool() -> ThreadPoolExecutor:
    return _process_pool(os.getpid())


@cache
def _process_pool(pid: int) -> ThreadPoolExecutor:
    """One pool per process: a forked child has none of its parent's threads, so it makes its own."""
    return ThreadPoolExecutor(2, thread_name_prefix="medops-window")


def _numbers(column: Any, size: int) -> np.ndarray:
    if column is None:
        return np.full(size, np.nan)
    if hasattr(column, "to_numpy") and not isinstance(column, np.ndarray):
        try:
            column = column.to_numpy(zero_copy_only=False)  # a pyarrow array
        except TypeError:
            column = column.to_numpy()  # a pandas Series
    values = np.asarray(column)
    if values.dtype == object or values.dtype.kind in "US":
        return as_numbers(values)  # text that is no number (a stray "NA") is missing here, as it is to the model
    return values.astype(float, copy=False)


def _counts(column: Any, size: int) -> dict[Any, int]:
    """Each value's count in a chunk (None: the missing ones), counted in C, not row by row."""
    if column is None:
        return {None: size}
    if hasattr(column, "value_counts") and hasattr(column, "to_pylist"):  # a pyarrow array
        counted = column.value_counts()
        return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
    counted = pd.Series(column, dtype=object).value_counts(dropna=False)
    return {None if pd.isna(k) else k: int(v) for k, v in counted.items()}
