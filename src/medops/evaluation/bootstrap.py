"""Bootstrap confidence intervals for every metric and every subgroup, thousands of resamples in seconds.

Resampling rows and recomputing metrics costs a sort of the whole test set per resample;
2,000 resamples of a million predictions would take hours. Instead the rows are counted
into cells (label x stratum x score bin, a few hundred score bins at the data's
quantiles, with the decision threshold and the calibration-error edges among the bin
edges). A bootstrap resample of rows is a multinomial draw of the cell counts; drawing
per label keeps the number of positives and negatives fixed (a stratified bootstrap).
Every group's histogram is a sum of strata, so one draw gives every subgroup and every
gap to the overall population, paired. The metrics of the binned resamples are shifted
by the difference between the exact and the binned value on the full data, so the
interval is centred where the exact bootstrap's is; the shift is the only use of the
binning's approximation, and the benchmark compares the result with a plain resampling
loop.

Rows of one patient (repeat stays) are not independent. When ``clusters`` gives each row's
patient, a resample draws patients, not rows (a cluster bootstrap): each patient's rows add
their cell counts together, so a resample is a draw of patients with replacement (counted per
patient) times one sparse patient-to-cell matrix, and the binned engine is otherwise unchanged. Without
clusters, rows are drawn within each label (a stratified bootstrap), or, with ``stratified=False``,
from all rows at once. Keeping the label counts fixed suits a test set whose prevalence was chosen;
it hides the uncertainty of everything that moves with the event rate (calibration-in-the-large,
PPV, prevalence), which is what monitoring a stream of outcomes asks about.

Resamples are drawn in chunks, each with its own seed from the run's seed: the same seed gives the
same intervals whatever the thread timing or the number of threads. Each group keeps only the bins that
hold its rows, the groups side by side on one axis, so a small group's fits and sums cost its few bins,
not every bin. The chunks run on two threads even for a small test set: its cost is still mostly the
calibration fits, and starting a pool takes well under a millisecond, so two threads cut it where the
cores are free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from medops.errors import InvalidInput
from medops.evaluation.metrics import ECE_EDGES, METRICS, Histogram, calibration_start, compute, exact_histogram

BINS = 256
CHUNK = 100
THREADS = 2


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Paired:
    """Both models' exact values on the same rows, their difference and its paired interval."""

    challenger: float
    champion: float
    difference: float
    interval: Interval


@dataclass(frozen=True)
class Distribution:
    """Per group and metric: the exact value and the shifted bootstrap values."""

    exact: np.ndarray  # (groups, metrics)
    resampled: np.ndarray  # (groups, metrics, resamples)
    metrics: tuple[str, ...]

    def interval(self, group: int, metric: str, level: float) -> Interval:
        return percentile_interval(self.resampled[group, self.metrics.index(metric)], level)

    def gap(self, group: int, metric: str, level: float, reference: int = 0) -> tuple[float, Interval]:
        """Group minus reference (the overall population), with the paired interval."""
        m = self.metrics.index(metric)
        value = float(self.exact[group, m] - self.exact[reference, m])
        return value, percentile_interval(self.resampled[group, m] - self.resampled[reference, m], level)


def percentile_interval(values: np.ndarray, level: float) -> Interval:
    finite = values[np.isfinite(values)]
    if len(finite) < max(10, 0.5 * len(values)):  # mostly undefined (a class missing in most resamples)
        return Interval(float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(low), float(high))


def bin_edges(p: np.ndarray, threshold: float, bins: int = BINS) -> np.ndarray:
    quantiles = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(np.concatenate([quantiles, ECE_EDGES, [threshold]]))


def bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    *,
    resamples: int,
    seed: int,
    bins: int = BINS,
    metrics: tuple[str, ...] = METRICS,
    progress: Callable[[int], None] | None = None,
    clusters: np.ndarray | None = None,
    stratified: bool = True,
    threads: int = THREADS,
) -> Distribution:
    """Exact metrics and ``resamples`` bootstrap values of each, for each group.

    ``strata`` gives each row's stratum (0..S-1, the finest partition by the subgroup
    attributes); ``groups`` is a (G, S) membership matrix: which strata make up each group.
    Row 0 of ``groups`` is usually the overall population (every stratum). ``clusters``
    (each row's patient, any hashable values) makes it a cluster bootstrap; otherwise ``stratified``
    draws rows within each label (True) or from all rows (False). ``threads``: how many threads compute
    the chunks (1: the calling thread only); the values do not depend on it.
    """
    y = np.asarray(y, dtype=np.int8)
    if threads < 1:
        raise InvalidInput(f"threads must be at least 1, not {threads}")
    p = np.asarray(p, dtype=np.float64)
    strata = np.asarray(strata, dtype=np.int64)
    groups = np.asarray(groups, dtype=bool)
    exact = _exact(y, p, strata, groups, threshold, metrics, threads)

    edges = bin_edges(p, threshold, bins)
    n_bins = len(edges) + 1
    row_bin = np.searchsorted(edges, p, side="right")
    cut = int(np.searchsorted(edges, threshold, side="left")) + 1
    in_bin = np.bincount(row_bin, minlength=n_bins)
    score = np.where(in_bin > 0, np.bincount(row_bin, weights=p, minlength=n_bins) / np.maximum(in_bin, 1), 0.0)
    score = np.where(in_bin > 0, score, np.r_[0.0, edges])  # an empty bin: its lower edge (it holds no rows)
    n_groups = groups.shape[0]
    # Each group keeps only the bins its rows fall in (a resample's rows are some of them), side by side
    # on one axis: the fits and sums of a small group cost its few bins, not all of them.
    layout = _group_bins(groups, np.bincount(strata * n_bins + row_bin, minlength=groups.shape[1] * n_bins))
    starts = layout.starts
    flat_score = score[layout.bins]
    cuts = starts + np.add.reduceat((layout.bins < cut).astype(np.intp), starts)  # each group's first bin >= cut
    # Per label, the non-empty cells (stratum, bin), their counts, and a sparse map from cell to
    # every group's place for that bin: a resample's group histograms are one sparse product.
    labels = []
    members = _cluster_codes(clusters, len(y))
    for label in (0, 1):
        key = strata[y == label] * n_bins + row_bin[y == label]
        cells, position, counts = np.unique(key, return_inverse=True, return_counts=True)
        stratum, cell_bin = cells // n_bins, cells % n_bins
        g_idx, c_idx = np.nonzero(groups[:, stratum])
        to_groups = sparse.csr_matrix(
            (np.ones(len(c_idx)), (c_idx, layout.place[g_idx, cell_bin[c_idx]])), shape=(len(cells), len(flat_score))
        )
        by_cluster = None if members is None else _by_cluster(members[0][y == label], position, members[1], len(cells))
        labels.append((counts, to_groups, by_cluster))

    def histograms(draws: list[np.ndarray]) -> Histogram:  # per label (r, cells) -> (r, every group's bins)
        per_label = [
            np.ascontiguousarray(to_groups.T.dot(d.T).T) for d, (_, to_groups, _) in zip(draws, labels, strict=True)
        ]
        return Histogram(per_label[1], per_label[0], flat_score, cuts, starts)

    full = histograms([counts[None, :].astype(np.float64) for counts, _, _ in labels])
    start = {k: v[0] for k, v in calibration_start(full.pos, full.neg, flat_score, starts).items()}
    binned_full = compute(full, start, metrics)
    shift = exact - np.stack([binned_full[m][0] for m in metrics], axis=1)  # (G, M)
    seeds = np.random.SeedSequence(seed).spawn((resamples + CHUNK - 1) // CHUNK)

    def chunk(index: int) -> np.ndarray:
        size = min(CHUNK, resamples - index * CHUNK)
        rng = np.random.default_rng(seeds[index])
        if members is not None:  # one draw of patients serves both labels: a patient brings all its rows
            draws = _draw_clusters(rng, size, [by_cluster for _, _, by_cluster in labels])
        elif not stratified:  # one draw over both labels' cells: the event count varies as it would
            both = np.concatenate([counts for counts, _, _ in labels])
            drawn = rng.multinomial(both.sum(), both / both.sum(), size=size).astype(np.float64)
            draws = [drawn[:, : len(labels[0][0])], drawn[:, len(labels[0][0]) :]]
        else:
            draws = [
                rng.multinomial(counts.sum(), counts / counts.sum(), size=size).astype(np.float64)
                if counts.sum()
                else np.zeros((size, len(counts)))
                for counts, _, _ in labels
            ]
        values = compute(histograms(draws), start, metrics)  # (r, G) each
        return np.stack([values[m].T for m in metrics], axis=1)  # (G, M, r)

    out = np.empty((n_groups, len(metrics), resamples))
    for index, values in enumerate(_map(chunk, range(len(seeds)), threads)):
        out[:, :, index * CHUNK : index * CHUNK + values.shape[2]] = values
        if progress is not None:
            progress(index * CHUNK + values.shape[2])
    return Distribution(exact, out + shift[:, :, None], metrics)


@dataclass(frozen=True)
class _Layout:
    """Every group's non-empty bins, one group after another on one axis."""

    bins: np.ndarray  # (places,) the bin at each place, ascending within each group
    starts: np.ndarray  # (G,) each group's first place
    place: np.ndarray  # (G, bins) each (group, bin)'s place; -1 where the group has no rows in the bin


def _group_bins(groups: np.ndarray, cell_rows: np.ndarray) -> _Layout:
    """``groups`` (G, S) as in ``bootstrap``; ``cell_rows`` (S * bins): rows per (stratum, bin). A group
    without rows keeps bin 0 (empty for it), so every group has a bin and its metrics come out
    undefined, as they would over every bin."""
    per_stratum = cell_rows.reshape(groups.shape[1], -1) > 0
    held = (groups.astype(np.int64) @ per_stratum.astype(np.int64)) > 0  # (G, bins)
    held[~held.any(axis=1), 0] = True
    group, bins = np.nonzero(held)  # row-major: by group, then bin ascending
    place = np.full(held.shape, -1, dtype=np.intp)
    place[group, bins] = np.arange(len(bins))
    return _Layout(bins, np.searchsorted(group, np.arange(len(groups))).astype(np.intp), place)


def _map(fn: Callable[[Any], np.ndarray], items: Sequence[Any], threads: int) -> Iterator[np.ndarray]:
    """``fn`` over ``items`` in order: on a pool of ``threads`` threads, or in this thread when one."""
    if threads == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(fn, items)


def _cluster_codes(clusters: np.ndarray | None, n: int) -> tuple[np.ndarray, int] | None:
    """Each row's cluster as 0..K-1, and K; None without clusters."""
    if clusters is None:
        return None
    values = np.asarray(clusters)
    if len(values) != n:
        raise ValueError(f"clusters has {len(values)} values for {n} rows")
    codes, uniques = pd.factorize(pd.Series(values, dtype="object"), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def _by_cluster(codes: np.ndarray, cell: np.ndarray, n_clusters: int, n_cells: int) -> sparse.csr_matrix:
    """(clusters, cells): how many of each cluster's rows fall in each cell."""
    return sparse.csr_matrix(
        (np.ones(len(codes)), (codes, cell)), shape=(n_clusters, n_cells)
    )  # duplicates are summed on conversion


def _draw_clusters(rng: np.random.Generator, size: int, matrices: list[Any]) -> list[np.ndarray]:
    """``size`` resamples of K clusters drawn with replacement, as cell counts for each (K, cells) matrix.

    The draws are made a few resamples at a time, so memory stays near 16 million counts
    whatever the number of patients."""
    k = matrices[0].shape[0]
    step = max(1, min(size, 16_000_000 // max(k, 1)))
    out: list[list[np.ndarray]] = [[] for _ in matrices]
    for begin in range(0, size, step):
        rows = min(step, size - begin)  # draws of k patients with replacement, counted per patient
        picks = rng.integers(0, k, size=(rows, k)) + (np.arange(rows) * k)[:, None]
        taken = np.bincount(picks.ravel(), minlength=rows * k).reshape(rows, k).astype(np.float64)
        for held, matrix in zip(out, matrices, strict=True):
            held.append(np.asarray(matrix.T.dot(taken.T).T))
    return [np.concatenate(held) for held in out]


def _exact(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    metrics: Sequence[str],
    threads: int = THREADS,
) -> np.ndarray:
    """Every group's exact metrics: the scores sorted once, each group's histogram counted from them."""
    score, inverse = np.unique(p, return_inverse=True)
    overall = exact_histogram(y, p, threshold)
    start = calibration_start(overall.pos, overall.neg, overall.score)  # groups' fits start here

    def one(member: np.ndarray) -> np.ndarray:
        rows = member[strata]
        if not rows.any():
            return np.full(len(metrics), np.nan)
        pos = np.bincount(inverse[rows], weights=y[rows], minlength=len(score))
        neg = np.bincount(inverse[rows], minlength=len(score)) - pos
        kept = (pos + neg) > 0
        h = Histogram(pos[kept], neg[kept], score[kept], int(np.searchsorted(score[kept], threshold, side="left")))
        values = compute(h, start, metrics=tuple(metrics))
        return np.array([float(values[m]) for m in metrics])

    return np.stack(list(_map(one, list(groups), threads)))


def paired_difference(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    metric: str,
    threshold: float,
    *,
    resamples: int,
    seed: int,
    level: float,
    bins: int = 128,
    clusters: np.ndarray | None = None,
) -> Paired:
    """Challenger minus champion on the same rows, with a paired bootstrap interval.

    The same resampled rows score both models: cells are (label, challenger's bin, champion's
    bin), and each model's histogram is the sum over the other's bins. With ``clusters``,
    patients are resampled, as in ``bootstrap``.
    """
    y = np.asarray(y, dtype=np.int8)
    exact = [compute(exact_histogram(y, p, threshold), metrics=(metric,))[metric] for p in (challenger, champion)]
    edges = [bin_edges(p, threshold, bins) for p in (challenger, champion)]
    sizes = [len(e) + 1 for e in edges]
    cuts = [int(np.searchsorted(e, threshold, side="left")) + 1 for e in edges]
    which = [np.searchsorted(e, p, side="right") for e, p in zip(edges, (challenger, champion), strict=True)]
    scores = [
        np.bincount(w, weights=p, minlength=s) / np.maximum(np.bincount(w, minlength=s), 1)
        for w, p, s in zip(which, (challenger, champion), sizes, strict=True)
    ]
    cells = (y.astype(np.int64) * sizes[0] + which[0]) * sizes[1] + which[1]
    per_label = np.bincount(cells, minlength=2 * sizes[0] * sizes[1]).reshape(2, -1)

    def values(dense: np.ndarray) -> np.ndarray:  # (r, 2, A, B) -> challenger - champion per resample
        a = Histogram(dense[:, 1].sum(2), dense[:, 0].sum(2), scores[0], cuts[0])
        b = Histogram(dense[:, 1].sum(1), dense[:, 0].sum(1), scores[1], cuts[1])
        return np.asarray(compute(a, metrics=(metric,))[metric] - compute(b, metrics=(metric,))[metric])

    full = values(per_label.reshape(1, 2, sizes[0], sizes[1]).astype(np.float64))
    rng = np.random.default_rng(seed)
    members = _cluster_codes(clusters, len(y))
    if members is not None:
        used, position = np.unique(cells, return_inverse=True)
        by_cluster = _by_cluster(members[0], position, members[1], len(used))
    drawn = []
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        dense = np.zeros((size, 2, sizes[0] * sizes[1]))
        if members is not None:
            dense.reshape(size, -1)[:, used] = _draw_clusters(rng, size, [by_cluster])[0]
        else:
            for label in (0, 1):
                present = np.flatnonzero(per_label[label])
                total = int(per_label[label].sum())
                if total:
                    dense[:, label, present] = rng.multinomial(total, per_label[label][present] / total, size=size)
        drawn.append(values(dense.reshape(size, 2, sizes[0], sizes[1])))
    difference = float(exact[0] - exact[1])
    shifted = np.concatenate(drawn) + (difference - float(full[0]))
    return Paired(float(exact[0]), float(exact[1]), difference, percentile_interval(shifted, level))
