"""Every validation metric, computed from score histograms, for many histograms at once.

A histogram is two count arrays over score bins in ascending order: positives and
negatives per bin, with each bin's score. With one bin per distinct score (see
``exact_histogram``) every metric is exact and ties are handled as scikit-learn handles
them; with a few hundred bins the same code computes thousands of bootstrap resamples in
one pass (``medops.evaluation.bootstrap``). The leading axes of ``pos`` and ``neg`` are
any batch shape (resamples, groups); the last axis is the bins. That axis may also hold several
histograms side by side, each over its own bins (``Histogram.starts``): a subgroup's histogram then
holds only the bins its rows fall in, and the bootstrap's per-resample work shrinks with the rows
instead of staying at every bin for every group.

The decision rule is ``score >= threshold``: bins from ``cut`` upward predict positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Higher is better for these; lower is better for brier and ece; the calibration pair is best at 1 and 0.
METRICS = (
    "auroc",
    "auprc",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "ece",
    "prevalence",
    "selection_rate",
    "fpr",
)
# Expected calibration error over ten equal-width probability bins: [0, 0.1), ..., [0.9, 1].
ECE_EDGES = np.array([k / 10 for k in range(1, 10)])
MAX_NEWTON = 50
CHECK_STEP = 5  # a fit still running after this many steps is checked for having a maximum at all
LOGIT_CLIP = 1e-6  # scores of exactly 0 or 1 have no logit; calibration treats them as 1e-6 and 1 - 1e-6


@dataclass(frozen=True)
class Histogram:
    """Counts per score bin. With ``starts``, the bins axis holds one histogram per start (the first
    start 0, each histogram's bins ascending and at least one), ``cut`` gives each histogram's first
    positive bin on the whole axis, and every metric gains a last axis: one value per histogram."""

    pos: np.ndarray  # (..., bins) positives per bin
    neg: np.ndarray  # (..., bins) negatives per bin
    score: np.ndarray  # (bins,) each bin's score, ascending (within each histogram)
    cut: int | np.ndarray  # first bin predicted positive (with starts: one per histogram)
    starts: np.ndarray | None = None  # (histograms,) where each histogram's bins begin


def exact_histogram(y: np.ndarray, p: np.ndarray, threshold: float) -> Histogram:
    """One bin per distinct score: the metrics computed from it are the exact ones."""
    score, inverse = np.unique(np.asarray(p, dtype=np.float64), return_inverse=True)
    pos = np.bincount(inverse, weights=np.asarray(y, dtype=np.float64), minlength=len(score))
    neg = np.bincount(inverse, minlength=len(score)) - pos
    return Histogram(pos, neg, score, int(np.searchsorted(score, threshold, side="left")))


def ece_index(score: np.ndarray) -> np.ndarray:
    return np.searchsorted(ECE_EDGES, score, side="right")


def logit(score: np.ndarray) -> np.ndarray:
    clipped = np.clip(score, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def compute(
    h: Histogram, start: dict[str, np.ndarray] | None = None, metrics: tuple[str, ...] = METRICS
) -> dict[str, np.ndarray]:
    """Every metric for each histogram in the batch; undefined values (one class only, no positives
    predicted) are NaN. ``start`` holds calibration fits to start from (the exact ones, for resamples)."""
    pos, neg, score = h.pos.astype(np.float64), h.neg.astype(np.float64), h.score
    if not len(score):  # no rows: one empty bin, so every metric is undefined rather than an error
        pos, neg, score = np.zeros((*pos.shape[:-1], 1)), np.zeros((*neg.shape[:-1], 1)), np.zeros(1)
    starts = np.zeros(1, dtype=np.intp) if h.starts is None else np.asarray(h.starts, dtype=np.intp)
    lengths = np.diff(starts, append=len(score))

    def sums(a: np.ndarray) -> np.ndarray:  # per histogram: (..., bins) -> (..., histograms)
        return np.asarray(np.add.reduceat(a, starts, axis=-1))

    def before(a: np.ndarray) -> np.ndarray:  # per bin: the counts of the lower bins of its histogram
        lower: np.ndarray = np.cumsum(a, -1) - a  # exact: the counts are whole numbers
        return np.asarray(lower - np.repeat(lower[..., starts], lengths, axis=-1))

    n_pos, n_neg = sums(pos), sums(neg)
    n = n_pos + n_neg
    out: dict[str, np.ndarray] = {}
    below = before(neg)  # negatives scored strictly lower
    out["auroc"] = _ratio(sums(pos * (below + 0.5 * neg)), n_pos * n_neg)
    tp_from = np.repeat(n_pos, lengths, axis=-1) - before(pos)  # positives scored here or higher
    called_from = tp_from + np.repeat(n_neg, lengths, axis=-1) - below
    precision = np.divide(tp_from, called_from, out=np.zeros_like(tp_from), where=called_from > 0)
    out["auprc"] = _ratio(sums(pos * precision), n_pos)
    predicted = np.arange(len(score)) >= np.repeat(np.atleast_1d(h.cut), lengths)
    tp = sums(np.where(predicted, pos, 0.0))
    fp = sums(np.where(predicted, neg, 0.0))
    fn, tn = n_pos - tp, n_neg - fp
    out["sensitivity"] = _ratio(tp, n_pos)
    out["specificity"] = _ratio(tn, n_neg)
    out["fpr"] = _ratio(fp, n_neg)
    out["ppv"] = _ratio(tp, tp + fp)
    out["npv"] = _ratio(tn, tn + fn)
    out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    out["prevalence"] = _ratio(n_pos, n)
    out["selection_rate"] = _ratio(tp + fp, n)
    out["brier"] = _ratio(sums(pos * (1 - score) ** 2 + neg * score**2), n)
    opens = np.zeros(len(score), dtype=bool)
    opens[starts] = True  # an ECE bin never spans two histograms
    buckets = np.flatnonzero((np.diff(ece_index(score), prepend=-1) != 0) | opens)
    mass = (pos + neg) * score
    gap = np.abs(np.add.reduceat(mass, buckets, axis=-1) - np.add.reduceat(pos, buckets, axis=-1))
    out["ece"] = _ratio(np.add.reduceat(gap, np.searchsorted(buckets, starts), axis=-1), n)
    if "calibration_slope" in metrics or "calibration_intercept" in metrics:
        slope_fit, intercept = calibration(pos, neg, score, start, starts)
        out["calibration_slope"] = slope_fit[1]
        out["calibration_intercept"] = intercept
    if h.starts is None:  # one histogram per batch entry: no histogram axis
        return {name: out[name][..., 0] for name in metrics}
    return {name: out[name] for name in metrics}


def calibration(
    pos: np.ndarray,
    neg: np.ndarray,
    score: np.ndarray,
    start: dict[str, np.ndarray] | None = None,
    starts: np.ndarray | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Logistic recalibration, by Newton's method on the binned counts (their sufficient statistics).

    The slope is ``b`` in logit P(y) = a + b logit(score); the intercept is ``a`` with the slope
    fixed at 1 (calibration-in-the-large). Returns ((a, b), intercept); NaN where the fit does
    not converge (a group whose scores separate its labels perfectly, or with one class). With
    ``starts`` (see ``Histogram``), one fit per histogram: the results gain a last axis.
    """
    x = logit(score)
    batch = pos.shape[:-1]
    shape = batch if starts is None else (*batch, len(starts))
    flat_pos, flat_neg = pos.reshape(-1, pos.shape[-1]), neg.reshape(-1, neg.shape[-1])
    first = np.zeros(1, dtype=np.intp) if starts is None else np.asarray(starts, dtype=np.intp)

    def initial(key: str, default: float) -> np.ndarray:
        value = np.full(shape, default) if start is None else np.broadcast_to(start[key], shape)
        return np.array(value, dtype=np.float64).ravel()

    a, b = _newton(flat_pos, flat_neg, x, first, initial("a", 0.0), initial("b", 1.0), slope=True)
    c, _ = _newton(flat_pos, flat_neg, x, first, initial("c", 0.0), np.ones(len(a)), slope=False)
    return (a.reshape(shape), b.reshape(shape)), c.reshape(shape)


def _newton(
    pos: np.ndarray, neg: np.ndarray, x: np.ndarray, starts: np.ndarray, a: np.ndarray, b: np.ndarray, *, slope: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Fits of many histograms at once; one stops when it converges or can't.

    ``pos`` is (batch, bins) with the histograms of each batch row side by side from ``starts``, so
    the fits are one flat run of bins with a start per fit and their sums are ``reduceat`` over those
    starts: a fit costs the bins that hold its rows, not every bin (an empty bin adds exact zeros to
    every sum; they are dropped when they are a quarter of the run). Stopped fits leave the run once
    they hold a quarter of it (gathering the rest costs about as much as a step). Without a slope, b
    stays 1 and b x is x. The arithmetic reuses buffers (these fits are most of a bootstrap's cost on
    a small test set), in the order of operations of the plain formulas.
    """
    lengths = np.tile(np.diff(starts, append=pos.shape[-1]), len(pos))  # each fit's bins
    first = np.cumsum(lengths) - lengths  # where each fit's bins begin in the flat run
    values, both, xs = pos.ravel(), (pos + neg).ravel(), np.tile(x, len(pos))
    work = np.arange(len(a))  # the fits whose bins are in the flat run
    held = both > 0
    if 4 * np.count_nonzero(held) < 3 * len(held):
        lengths = np.add.reduceat(held.astype(np.intp), first)
        values, both, xs = values[held], both[held], xs[held]
        work, lengths = work[lengths > 0], lengths[lengths > 0]  # a fit without rows has no maximum: NaN
        first = np.cumsum(lengths) - lengths
    live = np.ones(len(work), dtype=bool)  # which of them are still running
    out_a, out_b = np.full(len(a), np.nan), np.full(len(a), np.nan)
    a, b = a.copy(), b.copy()
    with np.errstate(all="ignore"):
        for step in range(MAX_NEWTON):
            if not live.any():
                break
            if slope:  # mu = 1 / (1 + exp(-(a + b x))), in place
                mu = np.multiply(xs, _per_bin(b, work, lengths))
                mu += _per_bin(a, work, lengths)
            else:
                mu = np.add(xs, _per_bin(a, work, lengths))
            np.negative(mu, out=mu)
            np.exp(mu, out=mu)
            mu += 1
            np.divide(1, mu, out=mu)
            w = both * mu
            resid = values - w
            np.subtract(1, mu, out=mu)
            w *= mu  # total * mu * (1 - mu)
            g0, h00 = np.add.reduceat(resid, first), np.add.reduceat(w, first)
            if slope:
                resid *= xs
                w *= xs
                g1, h01 = np.add.reduceat(resid, first), np.add.reduceat(w, first)
                w *= xs
                h11 = np.add.reduceat(w, first)
                det = h00 * h11 - h01 * h01
                ok = det > 1e-12 * np.maximum(h00 * h11, 1e-300)
                da = np.where(ok, (h11 * g0 - h01 * g1) / np.where(ok, det, 1), 0.0)
                db = np.where(ok, (h00 * g1 - h01 * g0) / np.where(ok, det, 1), 0.0)
            else:
                ok = h00 > 0
                da, db = np.where(ok, g0 / np.where(ok, h00, 1), 0.0), np.zeros(len(work))
            a[work] += da  # a stopped fit's a and b move on too, unread: its result is already kept
            b[work] += db
            finite = np.isfinite(a[work]) & np.isfinite(b[work]) & (np.abs(b[work]) < 1e6)
            done = live & ok & finite & (np.abs(da) < 1e-8) & (np.abs(db) < 1e-8)
            out_a[work[done]], out_b[work[done]] = a[work[done]], b[work[done]]
            live &= ~done & ok & finite
            check = step == CHECK_STEP  # the fits still running now: has each a maximum at all?
            if check or 4 * lengths[live].sum() < 3 * len(values):
                bins = _bins_of(first[live], lengths[live])
                values, both, xs = values[bins], both[bins], xs[bins]
                work, lengths = work[live], lengths[live]
                first = np.cumsum(lengths) - lengths
                live = np.ones(len(work), dtype=bool)
            if check and len(work):  # the others step towards infinity until MAX_NEWTON, to end NaN
                live = _has_fit(values, both - values, xs, first, slope)
    return out_a, out_b


def _per_bin(value: np.ndarray, work: np.ndarray, lengths: np.ndarray) -> np.ndarray | float:
    """Each fit's value at each of its bins; one fit's (an exact histogram's) as a number, broadcast."""
    return float(value[work[0]]) if len(work) == 1 else np.repeat(value[work], lengths)


def _bins_of(first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions in the flat run of the fits beginning at ``first``, ``lengths`` bins each."""
    bins = np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
    bins += np.arange(len(bins))
    return bins


def _has_fit(pos: np.ndarray, neg: np.ndarray, x: np.ndarray, first: np.ndarray, slope: bool) -> np.ndarray:
    """Which fits have a finite maximum: both classes, and for a slope, overlapping scores (no score
    at or below which every row is one class and above which every row is the other)."""
    n_pos, n_neg = np.add.reduceat(pos, first), np.add.reduceat(neg, first)
    both = (n_pos > 0) & (n_neg > 0)
    if not slope:
        return both
    lowest_pos = np.minimum.reduceat(np.where(pos > 0, x, np.inf), first)
    highest_pos = np.maximum.reduceat(np.where(pos > 0, x, -np.inf), first)
    lowest_neg = np.minimum.reduceat(np.where(neg > 0, x, np.inf), first)
    highest_neg = np.maximum.reduceat(np.where(neg > 0, x, -np.inf), first)
    return both & (lowest_pos < highest_neg) & (lowest_neg < highest_pos)


def calibration_start(
    pos: np.ndarray, neg: np.ndarray, score: np.ndarray, starts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The fits of the full data: resamples start from them and converge in a few steps."""
    (a, b), c = calibration(pos, neg, score, starts=starts)
    return {"a": np.nan_to_num(a), "b": np.nan_to_num(b, nan=1.0), "c": np.nan_to_num(c)}
