"""Mergeable summaries of one feature: what a drift statistic needs, without the rows.

A window of 10M logged predictions must not become 10M Python values, and the reference set
is not kept beside every model version. So both sides are reduced to counts on one grid that
the reference fixes: the reference's distinct values when it has few (counts, codes, rounded
labs: every statistic is then exact), else its quantiles (KS is then bounded by the heaviest
bin's mass, which the drift report states). A summary also holds the sum of the values in each
bin, so a Wasserstein distance places a bin's mass at its mean rather than at an edge.

Summaries of chunks add up to the summary of the whole, in any order: a window is summarized
batch by batch in bounded memory, and its verdict cannot depend on how the rows were read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medops.monitoring.grid_bins import grid_bins

GRID_DISTINCT = 1_000  # a reference with at most this many distinct values keeps them all as the grid
GRID_QUANTILES = 500  # otherwise the grid is this many quantiles (the KS bound is then about 1/500)
MISSING = "__missing__"  # never a category's own value: what a summary counts missing values as


def numeric_grid(values: np.ndarray) -> np.ndarray:
    """The grid a feature's summaries are counted on, from the reference's values (missing dropped)."""
    known = np.asarray(values, dtype=float)
    known = known[np.isfinite(known)]
    if not len(known):
        return np.array([], dtype=float)
    distinct = np.unique(known)
    if len(distinct) <= GRID_DISTINCT:
        return distinct
    return np.unique(np.quantile(known, np.linspace(0, 1, GRID_QUANTILES + 1), method="inverted_cdf"))


@dataclass
class NumericSummary:
    """Counts of a numeric feature on a grid: bin i holds the values in (edges[i-1], edges[i]],
    bin 0 everything up to edges[0], the last bin everything above edges[-1]."""

    edges: np.ndarray
    counts: np.ndarray  # len(edges) + 1
    sums: np.ndarray  # the values' sum per bin
    missing: int = 0
    low: float = float("inf")  # the smallest and largest value seen
    high: float = float("-inf")

    @classmethod
    def empty(cls, edges: np.ndarray) -> NumericSummary:
        size = len(edges) + 1
        return cls(np.asarray(edges, dtype=float), np.zeros(size, dtype=np.int64), np.zeros(size))

    @classmethod
    def of(cls, values: np.ndarray, edges: np.ndarray) -> NumericSummary:
        summary = cls.empty(edges)
        summary.add(values)
        return summary

    @property
    def n(self) -> int:
        """Values present (missing ones are counted apart)."""
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count one more chunk of values (NaN, None and infinities are missing)."""
        numbers = np.asarray(values, dtype=float)
        present = np.isfinite(numbers)
        missing = len(numbers) - int(present.sum())
        self.missing += missing
        if missing:  # a copy only when there is something to drop
            numbers = numbers[present]
        if not len(numbers):
            return
        bins = grid_bins(self.edges, numbers)
        size = len(self.edges) + 1
        self.counts += np.bincount(bins, minlength=size)
        self.sums += np.bincount(bins, weights=numbers, minlength=size)
        self.low = min(self.low, float(numbers.min()))
        self.high = max(self.high, float(numbers.max()))

    def merge(self, other: NumericSummary) -> NumericSummary:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("summaries on different grids cannot be merged")
        return NumericSummary(
            self.edges,
            self.counts + other.counts,
            self.sums + other.sums,
            self.missing + other.missing,
            min(self.low, other.low),
            max(self.high, other.high),
        )

    def means(self) -> np.ndarray:
        """Each bin's mean value (an empty bin: its upper edge, or the grid's top for the last)."""
        place = np.append(self.edges, self.edges[-1] if len(self.edges) else 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), place)

    def exact(self) -> bool:
        """True when every value sits on a grid point: statistics from the counts are then exact."""
        inner = self.counts[:-1] > 0
        on_edges = np.isclose(self.sums[:-1][inner], self.edges[inner] * self.counts[:-1][inner])
        return bool(self.counts[-1] == 0 and np.all(on_edges))

    def to_doc(self) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "missing": self.missing,
            "low": None if self.n == 0 else self.low,
            "high": None if self.n == 0 else self.high,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> NumericSummary:
        present = doc.get("low") is not None
        return cls(
            np.asarray(doc["edges"], dtype=float),
            np.asarray(doc["counts"], dtype=np.int64),
            np.asarray(doc["sums"], dtype=float),
            int(doc.get("missing", 0)),
            float(doc["low"]) if present else float("inf"),
            float(doc["high"]) if present else float("-inf"),
        )


@dataclass
class CategorySummary:
    """Counts of a categorical feature's values (as text), missing apart."""

    counts: Counter[str] = field(default_factory=Counter)
    missing: int = 0

    @classmethod
    def of(cls, values: Iterable[Any]) -> CategorySummary:
        summary = cls()
        summary.add(values)
        return summary

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def add(self, values: Iterable[Any]) -> None:
        for value, count in Counter(values).items():
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                self.missing += count
            else:
                self.counts[str(value)] += count

    def add_counts(self, counts: Mapping[Any, int]) -> None:
        """Counts already aggregated (by DuckDB): a None key is the missing count."""
        for value, count in counts.items():
            if value is None:
                self.missing += int(count)
            else:
                self.counts[str(value)] += int(count)

    def merge(self, other: CategorySummary) -> CategorySummary:
        return CategorySummary(self.counts + other.counts, self.missing + other.missing)

    def to_doc(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "missing": self.missing}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CategorySummary:
        return cls(Counter({str(k): int(v) for k, v in doc.get("counts", {}).items()}), int(doc.get("missing", 0)))
