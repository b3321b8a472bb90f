"""The decision threshold: chosen by a target sensitivity, a target specificity or a cost ratio;
the table of what each threshold would give; and the curves the report draws.

All from the exact histogram (one bin per distinct score), so a chosen threshold is one of
the model's own scores and every number agrees with scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medops.errors import InvalidInput
from medops.evaluation.metrics import ECE_EDGES, exact_histogram
from medops.evaluation.spec import ThresholdSpec

TABLE = [round(0.05 * k, 2) for k in range(1, 20)]
MAX_POINTS = 200


def _cuts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Per distinct score s: the positives and negatives predicted positive by the rule score >= s."""
    h = exact_histogram(y, p, 0.5)
    tp = np.cumsum(h.pos[::-1])[::-1]
    fp = np.cumsum(h.neg[::-1])[::-1]
    return h.score, tp, fp, float(h.pos.sum()), float(h.neg.sum())


def choose(y: np.ndarray, p: np.ndarray, spec: ThresholdSpec) -> float:
    """The threshold the rule picks on these predictions."""
    if spec.target_sensitivity is None and spec.target_specificity is None and spec.cost_ratio is None:
        return spec.fixed
    score, tp, fp, n_pos, n_neg = _cuts(y, p)
    if n_pos == 0 or n_neg == 0:
        raise InvalidInput("a threshold rule needs both outcomes in the predictions it is solved on")
    if spec.target_sensitivity is not None:
        ok = np.flatnonzero(tp / n_pos >= spec.target_sensitivity - 1e-12)
        return float(score[ok[-1]])  # the highest threshold that still reaches the target
    if spec.target_specificity is not None:
        ok = np.flatnonzero((n_neg - fp) / n_neg >= spec.target_specificity - 1e-12)
        return float(score[ok[0]]) if len(ok) else float(np.nextafter(score[-1], np.inf))
    assert spec.cost_ratio is not None
    cost = spec.cost_ratio * (n_pos - tp) + fp
    return float(score[int(np.argmin(cost))])


def table(y: np.ndarray, p: np.ndarray, chosen: float) -> list[dict[str, Any]]:
    """Sensitivity, specificity, PPV, NPV, F1 and selection rate at round thresholds and the chosen one."""
    score, tp, fp, n_pos, n_neg = _cuts(y, p)
    rows = []
    for t in sorted({*TABLE, chosen}):
        k = int(np.searchsorted(score, t, side="left"))
        called_tp = float(tp[k]) if k < len(score) else 0.0
        called_fp = float(fp[k]) if k < len(score) else 0.0
        fn, tn = n_pos - called_tp, n_neg - called_fp
        rows.append(
            {
                "threshold": float(t),
                "sensitivity": _div(called_tp, n_pos),
                "specificity": _div(tn, n_neg),
                "ppv": _div(called_tp, called_tp + called_fp),
                "npv": _div(tn, tn + fn),
                "f1": _div(2 * called_tp, 2 * called_tp + called_fp + fn),
                "selection_rate": _div(called_tp + called_fp, n_pos + n_neg),
                "chosen": bool(t == chosen),
            }
        )
    return rows


def _div(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _thin(points: np.ndarray) -> list[list[float]]:
    if len(points) > MAX_POINTS:
        keep = np.unique(np.r_[np.linspace(0, len(points) - 1, MAX_POINTS).round().astype(int), len(points) - 1])
        points = points[keep]
    return [[round(float(a), 5), round(float(b), 5)] for a, b in points]


def curves(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall points (at most 200 each) and the ten-bin calibration table."""
    score, tp, fp, n_pos, n_neg = _cuts(y, p)
    # thresholds from the highest score down: from (0, 0) to (1, 1)
    roc = np.column_stack([np.r_[0.0, fp[::-1] / max(n_neg, 1)], np.r_[0.0, tp[::-1] / max(n_pos, 1)]])
    recall = tp / max(n_pos, 1)
    precision = tp / np.maximum(tp + fp, 1)
    pr = np.column_stack([recall[::-1], precision[::-1]])
    bins = np.searchsorted(ECE_EDGES, p, side="right")
    calibration = []
    for b in range(10):
        rows = bins == b
        if rows.any():
            calibration.append(
                {
                    "bin": f"{b / 10:.1f}–{(b + 1) / 10:.1f}",
                    "mean_predicted": float(p[rows].mean()),
                    "observed": float(y[rows].mean()),
                    "count": int(rows.sum()),
                }
            )
    return {"roc": _thin(roc), "pr": _thin(pr), "calibration": calibration}
