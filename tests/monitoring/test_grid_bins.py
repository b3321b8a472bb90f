"""The grid lookup gives NumPy's searchsorted answer for every value, wherever it falls."""

from __future__ import annotations

import numpy as np
import pytest

from medops.monitoring.grid_bins import GridTable, grid_bins
from medops.monitoring.summary import NumericSummary, numeric_grid


def _grids(rng: np.random.Generator) -> list[np.ndarray]:
    skewed = numeric_grid(rng.lognormal(0, 2, 200_000))  # most edges crowded into a few cells
    crowded = np.unique(np.concatenate([np.linspace(0, 1, 50), 0.5 + np.arange(400) * 1e-12]))
    return [
        numeric_grid(rng.normal(0, 1, 100_000)),
        skewed,
        numeric_grid(rng.integers(0, 120, 100_000).astype(float)),  # distinct values: ages
        numeric_grid(np.round(rng.normal(37, 1, 100_000), 1)),  # a temperature with one decimal
        crowded,
        np.array([-1e300, -1.0, 0.0, 1e-300, 2.0, 3.0, 1e10, 1e300, 1.5e300]),
        np.arange(8, dtype=float),
        np.array([1.0, 2.0]),  # too small for a table: the binary search
    ]


def _values(rng: np.random.Generator, edges: np.ndarray) -> np.ndarray:
    near = np.concatenate(
        [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), (edges[:-1] + edges[1:]) / 2]
    )
    span = edges[-1] - edges[0] if np.isfinite(edges[-1] - edges[0]) else 1e300
    spread = rng.uniform(edges[0] - span, edges[-1] + span, 20_000) if np.isfinite(span) else rng.normal(0, 1, 10)
    extremes = np.array([-np.finfo(float).max, np.finfo(float).max, -0.0, 0.0, 5e-324, -5e-324])
    return np.concatenate([near, spread, rng.choice(edges, 5_000), extremes])


@pytest.mark.parametrize("seed", range(5))
def test_every_value_gets_the_bin_searchsorted_gives(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for edges in _grids(rng):
        values = _values(rng, edges)
        rng.shuffle(values)
        np.testing.assert_array_equal(grid_bins(edges, values), np.searchsorted(edges, values, side="left"))


def test_a_grid_that_cannot_be_cut_into_cells_has_no_table() -> None:
    assert GridTable.of(np.arange(4, dtype=float)) is None  # small: the binary search is as quick
    assert GridTable.of(np.array([-np.inf, *range(10)])) is None
    assert GridTable.of(np.array([-1e308, *range(10), 1e308])) is None  # the range overflows
    assert GridTable.of(np.arange(10, dtype=float)) is not None


def test_a_summary_counts_the_same_whether_its_chunks_were_whole_or_had_missing_values() -> None:
    rng = np.random.default_rng(7)
    values = rng.gamma(2, 2, 50_000)
    edges = numeric_grid(values)
    whole = NumericSummary.of(values, edges)
    holey = NumericSummary.empty(edges)
    holey.add(np.concatenate([values[:20_000], [np.nan, np.inf]]))
    holey.add(values[20_000:])
    assert holey.missing == 2 and np.array_equal(holey.counts, whole.counts)
    assert np.allclose(holey.sums, whole.sums) and (holey.low, holey.high) == (whole.low, whole.high)
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    assert np.array_equal(whole.counts, expected)
