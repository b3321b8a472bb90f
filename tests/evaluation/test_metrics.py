"""Metrics from score histograms agree with scikit-learn, ties and all; thresholds pick what they promise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from medops.evaluation.metrics import Histogram, calibration, compute, exact_histogram, logit
from medops.evaluation.spec import ThresholdSpec
from medops.evaluation.thresholds import choose, curves, table


def _data(seed: int, n: int = 3000, rounding: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 1.2 * y - 1)))
    if rounding is not None:
        p = np.round(p, rounding)  # many ties, as a calibrated or binned model gives
    return y, p


def _sklearn(y: np.ndarray, p: np.ndarray, t: float) -> dict[str, float]:
    pred = p >= t
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p).reshape(-1, 1), y)
    return {
        "auroc": skm.roc_auc_score(y, p),
        "auprc": skm.average_precision_score(y, p),
        "sensitivity": skm.recall_score(y, pred),
        "specificity": tn / (tn + fp),
        "ppv": skm.precision_score(y, pred),
        "npv": tn / (tn + fn),
        "f1": skm.f1_score(y, pred),
        "brier": skm.brier_score_loss(y, p),
        "prevalence": y.mean(),
        "selection_rate": pred.mean(),
        "fpr": fp / (fp + tn),
        "calibration_slope": float(fit.coef_[0][0]),
    }


@pytest.mark.parametrize(("seed", "rounding", "threshold"), [(0, None, 0.3), (1, 2, 0.25), (2, 1, 0.5)])
def test_every_metric_agrees_with_scikit_learn(seed: int, rounding: int | None, threshold: float) -> None:
    y, p = _data(seed, rounding=rounding)
    ours = compute(exact_histogram(y, p, threshold))
    for name, expected in _sklearn(y, p, threshold).items():
        tolerance = 1e-6 if name == "calibration_slope" else 1e-12
        assert ours[name] == pytest.approx(expected, abs=tolerance), name


def test_ece_and_intercept_by_hand() -> None:
    y, p = _data(3)
    ours = compute(exact_histogram(y, p, 0.5))
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(10)) / len(y)
    assert ours["ece"] == pytest.approx(ece, abs=1e-12)
    # calibration-in-the-large: the intercept that makes the mean of the shifted risks match the outcomes
    shifted = 1 / (1 + np.exp(-(logit(p) + ours["calibration_intercept"])))
    assert shifted.mean() == pytest.approx(y.mean(), abs=1e-8)


def test_undefined_metrics_are_nan_not_errors() -> None:
    y = np.zeros(50, dtype=np.int8)
    p = np.linspace(0, 1, 50)
    ours = compute(exact_histogram(y, p, 2.0))  # one class; nobody flagged
    assert np.isnan(ours["auroc"]) and np.isnan(ours["sensitivity"]) and np.isnan(ours["ppv"])
    assert ours["specificity"] == 1.0 and np.isnan(ours["calibration_slope"])


def test_a_batch_is_many_histograms_at_once() -> None:
    y, p = _data(4, rounding=2)
    h = exact_histogram(y, p, 0.3)
    batch = type(h)(np.stack([h.pos, h.pos * 2]), np.stack([h.neg, h.neg * 2]), h.score, h.cut)
    values = compute(batch)
    for name, pair in values.items():  # doubling every count changes no rate
        assert pair[0] == pytest.approx(pair[1], rel=1e-6, abs=1e-9), name


def test_threshold_rules_keep_their_promise() -> None:
    y, p = _data(5)
    t = choose(y, p, ThresholdSpec(target_sensitivity=0.8))
    assert skm.recall_score(y, p >= t) >= 0.8
    higher = np.min(p[p > t])  # the next score up would miss the target
    assert skm.recall_score(y, p >= higher) < 0.8
    t = choose(y, p, ThresholdSpec(target_specificity=0.9))
    assert skm.recall_score(1 - y, p < t) >= 0.9
    t = choose(y, p, ThresholdSpec(cost_ratio=4))
    cost = {s: 4 * ((p < s) & (y == 1)).sum() + ((p >= s) & (y == 0)).sum() for s in np.unique(p)}
    assert cost[t] == min(cost.values())
    assert choose(y, p, ThresholdSpec(value=0.42)) == 0.42 and choose(y, p, ThresholdSpec()) == 0.5


def test_the_table_and_curves() -> None:
    y, p = _data(6)
    rows = table(y, p, 0.333)
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["threshold"] == 0.333
    assert chosen["sensitivity"] == pytest.approx(skm.recall_score(y, p >= 0.333))
    drawn = curves(y, p)
    assert drawn["roc"][0] == [0.0, 0.0] and drawn["roc"][-1] == [1.0, 1.0] and len(drawn["roc"]) <= 200
    fpr, tpr = np.array(drawn["roc"]).T
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(y, p), abs=0.01)
    assert sum(b["count"] for b in drawn["calibration"]) == len(y)


def _row_fits(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Logistic recalibration fitted on the rows themselves, by plain Newton steps: (a, b) and the
    intercept with the slope fixed at 1."""
    a, b, c = 0.0, 1.0, 0.0
    for _ in range(40):
        mu = 1 / (1 + np.exp(-(a + b * x)))
        w = mu * (1 - mu)
        hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        step = np.linalg.solve(hess, np.array([(y - mu).sum(), ((y - mu) * x).sum()]))
        a, b = a + step[0], b + step[1]
        mu = 1 / (1 + np.exp(-(c + x)))
        c += (y - mu).sum() / (mu * (1 - mu)).sum()
    return a, b, c


def test_histograms_side_by_side_over_their_own_bins_equal_fits_on_the_rows() -> None:
    """The bootstrap keeps only each group's non-empty bins, groups side by side on one axis: the
    calibration fits over those bins equal fits on the expanded rows, and every metric equals the
    one computed over all bins, empty ones included."""
    rng = np.random.default_rng(7)
    edges = np.quantile(rng.uniform(0.02, 0.98, 5000), np.linspace(0, 1, 200)[1:-1])
    n_bins = len(edges) + 1
    centre = np.r_[0.01, (edges[1:] + edges[:-1]) / 2, 0.99]  # each bin's score, ascending
    groups = []
    for size in (25, 120, 900):  # small groups fill a few bins, the large one most of them
        which = np.searchsorted(edges, rng.uniform(0.02, 0.98, size), side="right")
        y = (rng.random(size) < 1 / (1 + np.exp(-(0.3 + 0.8 * logit(centre[which]))))).astype(np.int8)
        y[:2] = (0, 1)  # both classes
        groups.append((which, y))
    full = [(np.bincount(w, weights=y, minlength=n_bins), np.bincount(w, minlength=n_bins)) for w, y in groups]
    kept = [np.flatnonzero(total) for _, total in full]
    starts = np.cumsum([0] + [len(k) for k in kept[:-1]])
    pos = np.concatenate([p[k] for (p, _), k in zip(full, kept, strict=True)])
    neg = np.concatenate([(t - p)[k] for (p, t), k in zip(full, kept, strict=True)])
    score = np.concatenate([centre[k] for k in kept])
    cut = starts + np.array([np.searchsorted(centre[k], 0.4) for k in kept])
    assert len(kept[0]) < n_bins / 5 and len(kept[1]) < n_bins / 2  # most of a small group's bins are empty
    side_by_side = compute(Histogram(pos, neg, score, cut, starts))
    (a, b), c = calibration(pos, neg, score, starts=starts)
    for g, ((which, y), (p_g, t_g)) in enumerate(zip(groups, full, strict=True)):
        fit_a, fit_b, fit_c = _row_fits(y.astype(np.float64), logit(centre[which]))
        assert a[g] == pytest.approx(fit_a, abs=1e-10) and b[g] == pytest.approx(fit_b, abs=1e-10)
        assert c[g] == pytest.approx(fit_c, abs=1e-10)
        every_bin = compute(Histogram(p_g, t_g - p_g, centre, int(np.searchsorted(centre, 0.4))))
        for name, value in every_bin.items():
            assert side_by_side[name][g] == pytest.approx(float(value), abs=1e-12), name
