"""Every validation metric, computed from score histograms, for many histograms at once.

A histogram is two count arrays over score bins in ascending order: positives and
negatives per bin, with each bin's score. With one bin per distinct score (see
``exact_histogram``) every metric is exact and ties are handled as scikit-learn handles
them; with a few hundred bins the same code computes thousands of bootstrap resamples in
one pass (``medops.evaluation.bootstrap``). The leading axes of ``pos`` and ``neg`` are
any batch shape (resamples, groups); the last axis is the bins.

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
LOGIT_CLIP = 1e-6  # scores of exactly 0 or 1 have no logit; calibration treats them as 1e-6 and 1 - 1e-6


@dataclass(frozen=True)
class Histogram:
    pos: np.ndarray  # (..., bins) positives per bin
    neg: np.ndarray  # (..., bins) negatives per bin
    score: np.ndarray  # (bins,) each bin's score, ascending
    cut: int  # first bin predicted positive


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
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    n = n_pos + n_neg
    out: dict[str, np.ndarray] = {}
    below = np.cumsum(neg, -1) - neg  # negatives scored strictly lower
    out["auroc"] = _ratio((pos * (below + 0.5 * neg)).sum(-1), n_pos * n_neg)
    tp_desc = np.cumsum(pos[..., ::-1], -1)
    called_desc = tp_desc + np.cumsum(neg[..., ::-1], -1)
    precision = np.divide(tp_desc, called_desc, out=np.zeros_like(tp_desc), where=called_desc > 0)
    out["auprc"] = _ratio((pos[..., ::-1] * precision).sum(-1), n_pos)
    tp = pos[..., h.cut :].sum(-1)
    fp = neg[..., h.cut :].sum(-1)
    fn, tn = n_pos - tp, n_neg - fp
    out["sensitivity"] = _ratio(tp, n_pos)
    out["specificity"] = _ratio(tn, n_neg)
    out["fpr"] = _ratio(fp, n_neg)
    out["ppv"] = _ratio(tp, tp + fp)
    out["npv"] = _ratio(tn, tn + fn)
    out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    out["prevalence"] = _ratio(n_pos, n)
    out["selection_rate"] = _ratio(tp + fp, n)
    out["brier"] = _ratio((pos * (1 - score) ** 2 + neg * score**2).sum(-1), n)
    starts = np.flatnonzero(np.diff(ece_index(score), prepend=-1))
    mass = (pos + neg) * score
    gap = np.abs(np.add.reduceat(mass, starts, axis=-1) - np.add.reduceat(pos, starts, axis=-1))
    out["ece"] = _ratio(gap.sum(-1), n)
    if "calibration_slope" in metrics or "calibration_intercept" in metrics:
        slope_fit, intercept = calibration(pos, neg, score, start)
        out["calibration_slope"] = slope_fit[1]
        out["calibration_intercept"] = intercept
    return {name: out[name] for name in metrics}


def calibration(
    pos: np.ndarray, neg: np.ndarray, score: np.ndarray, start: dict[str, np.ndarray] | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Logistic recalibration, by Newton's method on the binned counts (their sufficient statistics).

    The slope is ``b`` in logit P(y) = a + b logit(score); the intercept is ``a`` with the slope
    fixed at 1 (calibration-in-the-large). Returns ((a, b), intercept); NaN where the fit does
    not converge (a group whose scores separate its labels perfectly, or with one class).
    """
    x = logit(score)
    batch = pos.shape[:-1]
    flat_pos, flat_neg = pos.reshape(-1, pos.shape[-1]), neg.reshape(-1, neg.shape[-1])

    def initial(key: str, default: float) -> np.ndarray:
        value = np.full(batch, default) if start is None else np.broadcast_to(start[key], batch)
        return np.array(value, dtype=np.float64).ravel()

    a, b = _newton(flat_pos, flat_neg, x, initial("a", 0.0), initial("b", 1.0), slope=True)
    c, _ = _newton(flat_pos, flat_neg, x, initial("c", 0.0), np.ones(len(flat_pos)), slope=False)
    return (a.reshape(batch), b.reshape(batch)), c.reshape(batch)


def _newton(
    pos: np.ndarray, neg: np.ndarray, x: np.ndarray, a: np.ndarray, b: np.ndarray, *, slope: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Fits of many rows at once; a row leaves the working set when it converges or can't.

    The arithmetic is written with reused buffers (these fits are most of a bootstrap's cost on a small
    test set), in the same order of operations as the plain formulas, so the results are bit-for-bit those.
    """
    out_a, out_b = np.full(len(a), np.nan), np.full(len(a), np.nan)
    active = np.arange(len(a))
    a, b = a.copy(), b.copy()
    both = pos + neg
    with np.errstate(all="ignore"):
        for _ in range(MAX_NEWTON):
            if not len(active):
                break
            whole = len(active) == len(a)  # no gather while every row is still in the working set
            p_ = pos if whole else pos[active]
            total = both if whole else both[active]
            mu = np.multiply(b[active, None], x)  # mu = 1 / (1 + exp(-(a + b x))), in place
            mu += a[active, None]
            np.negative(mu, out=mu)
            np.exp(mu, out=mu)
            mu += 1
            np.divide(1, mu, out=mu)
            w = total * mu
            resid = p_ - w
            np.subtract(1, mu, out=mu)
            w *= mu  # total * mu * (1 - mu)
            g0, h00 = resid.sum(-1), w.sum(-1)
            if slope:
                resid *= x
                w *= x
                g1, h01 = resid.sum(-1), w.sum(-1)
                w *= x
                h11 = w.sum(-1)
                det = h00 * h11 - h01 * h01
                ok = det > 1e-12 * np.maximum(h00 * h11, 1e-300)
                da = np.where(ok, (h11 * g0 - h01 * g1) / np.where(ok, det, 1), 0.0)
                db = np.where(ok, (h00 * g1 - h01 * g0) / np.where(ok, det, 1), 0.0)
            else:
                ok = h00 > 0
                da, db = np.where(ok, g0 / np.where(ok, h00, 1), 0.0), np.zeros(len(active))
            a[active] += da
            b[active] += db
            finite = np.isfinite(a[active]) & np.isfinite(b[active]) & (np.abs(b[active]) < 1e6)
            done = ok & finite & (np.abs(da) < 1e-8) & (np.abs(db) < 1e-8)
            out_a[active[done]], out_b[active[done]] = a[active[done]], b[active[done]]
            active = active[~done & ok & finite]
    return out_a, out_b


def calibration_start(pos: np.ndarray, neg: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """The fits of the full data: resamples start from them and converge in a few steps."""
    (a, b), c = calibration(pos, neg, score)
    return {"a": np.nan_to_num(a), "b": np.nan_to_num(b, nan=1.0), "c": np.nan_to_num(c)}
