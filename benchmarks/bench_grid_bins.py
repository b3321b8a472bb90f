"""The monitoring grid lookup (medops.monitoring.grid_bins) against NumPy's searchsorted, the library it replaces.

For each reference distribution a grid is built as a reference profile builds it (500 quantiles,
or the distinct values when there are at most 1,000), then chunks of 100,000 current values (a
window's chunk) are binned both ways. The answers are compared value for value first; then each
side is timed over ``--calls`` calls per round, the rounds interleaved, and the medians printed
with their ratio. The table is built on the first call and reused, as a window reuses it for
every chunk; its build time is printed apart.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from benchmarks.common import print_table

CHUNK = 100_000


def _cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [
        ("normal", rng.normal(0, 1, 1_000_000), rng.normal(0.5, 1, CHUNK)),
        ("log-normal (a lab)", rng.lognormal(0, 1, 1_000_000), rng.lognormal(0.1, 1, CHUNK)),
        ("gamma", rng.gamma(2, 2, 1_000_000), rng.gamma(2, 2.2, CHUNK)),
        ("uniform", rng.uniform(0, 100, 1_000_000), rng.uniform(0, 110, CHUNK)),
        ("ages (distinct values)", rng.integers(18, 100, 1_000_000).astype(float), rng.integers(18, 105, CHUNK) * 1.0),
        (
            "temperature, one decimal",
            np.round(rng.normal(37, 0.8, 1_000_000), 1),
            np.round(rng.normal(37.2, 1, CHUNK), 1),
        ),
    ]


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> dict[str, float]:
    from medops.monitoring.grid_bins import _table, grid_bins
    from medops.monitoring.summary import numeric_grid

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="calls per side and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 calls, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.rounds = 10, 3
    rng = np.random.default_rng(0)
    rows, ratios = [], {}
    for name, reference, current in _cases(rng):
        edges = numeric_grid(reference)
        start = time.perf_counter()
        _table(edges.tobytes())
        build_ms = (time.perf_counter() - start) * 1000
        library = np.searchsorted(edges, current, side="left")
        if not np.array_equal(grid_bins(edges, current), library):
            raise AssertionError(f"{name}: the grid lookup disagrees with searchsorted")
        ours, theirs = [], []
        for _ in range(args.rounds):  # interleaved: whatever else the machine does falls on both
            ours.append(_per_call(partial(grid_bins, edges, current), args.calls))
            theirs.append(_per_call(partial(np.searchsorted, edges, current, side="left"), args.calls))
        mine, lib = statistics.median(ours), statistics.median(theirs)
        ratios[name] = lib / mine
        rows.append(
            [name, str(len(edges)), f"{lib * 1000:.2f}", f"{mine * 1000:.2f}", f"{lib / mine:.1f}x", f"{build_ms:.1f}"]
        )
    print_table(
        f"binning {CHUNK:,} values on a reference grid (medians of {args.rounds} interleaved rounds; answers equal)",
        ["distribution", "edges", "searchsorted ms", "medops ms", "speed-up", "table build ms (once)"],
        rows,
    )
    return ratios


if __name__ == "__main__":
    main()
