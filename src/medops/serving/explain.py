"""Per-feature contributions of one prediction, summing exactly to the model's raw score.

An auditor asks "why did the model say this about this patient?". The answer is one number
per input feature plus a base value, whose sum is the model's raw score:

- LightGBM: exact TreeSHAP, computed by LightGBM itself (``pred_contrib=True``); raw score
  is the log-odds.
- Random forest and histogram gradient boosting: exact TreeSHAP by the ``shap`` package's
  TreeExplainer. The raw score is the log-odds for gradient boosting, and the mean of the
  trees' positive-class shares (a probability) for a random forest, which has no log-odds.
- Logistic regression: each coefficient times its input column as the model sees it
  (numbers standardized with the training mean and scale, categories one-hot); the base is
  the intercept. A number's contribution is therefore relative to the training mean.

The model works on a matrix where one categorical input is several one-hot columns; their
contributions are summed back into the one input feature, so the answer names the inputs a
request carries. A calibrated model is refused: its probability is not a sum of per-feature
terms, and explaining the uncalibrated model inside it would explain another number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medops.errors import InvalidInput

if TYPE_CHECKING:
    from medops.registry.compiled import Compiled
    from medops.registry.predictor import Predictor

LOG_ODDS = "log_odds"
PROBABILITY = "probability"


@dataclass(frozen=True)
class Explanation:
    """Rows of contributions (one column per input feature), the base value, and what they sum to."""

    features: list[str]
    contributions: np.ndarray  # (rows, features)
    base: float
    raw: np.ndarray  # the model's raw score per row: base + contributions summed
    scale: str  # LOG_ODDS, or PROBABILITY for a random forest

    def row(self, i: int) -> dict[str, Any]:
        """One row's explanation as JSON: base, contributions by feature, the raw score and its scale."""
        return {
            "base": self.base,
            "contributions": {f: float(v) for f, v in zip(self.features, self.contributions[i], strict=True)},
            "raw_score": float(self.raw[i]),
            "scale": self.scale,
        }


def explain(predictor: Predictor, frame: pd.DataFrame, *, check: bool = True) -> Explanation:
    """Contributions of every input feature for each row of ``frame`` (checked first unless ``check=False``)."""
    if predictor.compiled is None:
        raise InvalidInput("this model's pipeline has a shape medops cannot explain", code="not_explainable")
    if check:
        predictor.check(frame)
    return explain_compiled(predictor.compiled, frame)


def explain_compiled(compiled: Compiled, frame: pd.DataFrame) -> Explanation:
    """Contributions from a compiled pipeline: the matrix the model sees, explained, summed back to inputs."""
    x = compiled.matrix(frame)
    if compiled.booster is not None:
        contrib, base, raw, scale = _lightgbm(compiled.booster, x)
    else:
        contrib, base, raw, scale = _sklearn(compiled.model, x)
    features = [*compiled.numeric, *compiled.categorical]
    return Explanation(features, _to_inputs(compiled, contrib), base, raw, scale)


def _to_inputs(compiled: Compiled, contrib: np.ndarray) -> np.ndarray:
    """Matrix columns back to input features: numbers one to one, each category's one-hot block summed."""
    n_numeric = len(compiled.numeric)
    out = np.empty((contrib.shape[0], n_numeric + len(compiled.categorical)))
    out[:, :n_numeric] = contrib[:, :n_numeric]
    start = n_numeric
    for j, width in enumerate(compiled.widths):
        out[:, n_numeric + j] = contrib[:, start : start + width].sum(axis=1)
        start += width
    return out


def _lightgbm(booster: Any, x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, str]:
    full = np.asarray(booster.predict(x, pred_contrib=True))  # last column: the expected value
    raw = np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)
    return full[:, :-1], float(full[0, -1]) if len(full) else 0.0, raw, LOG_ODDS


def _sklearn(model: Any, x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, str]:
    kind = type(model).__name__
    if kind == "LogisticRegression":
        coef = np.asarray(model.coef_, dtype=np.float64)[0]
        base = float(np.asarray(model.intercept_)[0])
        contrib = x * coef
        return contrib, base, np.asarray(model.decision_function(x), dtype=np.float64), LOG_ODDS
    if kind in ("RandomForestClassifier", "HistGradientBoostingClassifier"):
        return _tree_shap(model, x, kind)
    if kind == "CalibratedClassifierCV":
        raise InvalidInput(
            "a calibrated model's probability is not a sum of per-feature terms: it is not explained",
            code="not_explainable",
            hint="explanations cover models trained without calibration",
        )
    raise InvalidInput(f"no explanation method for a {kind}", code="not_explainable")


def _tree_shap(model: Any, x: np.ndarray, kind: str) -> tuple[np.ndarray, float, np.ndarray, str]:
    import warnings

    with warnings.catch_warnings():  # shap's plotting colours use a matplotlib call being phased out; no plots here
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap  # imported only here: it loads numba

    explainer = shap.TreeExplainer(model)
    values = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=np.float64)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 3:  # one slice per class (random forest): the positive class's
        values, base = values[:, :, 1], float(expected[1])
    else:
        base = float(expected[0])
    if kind == "RandomForestClassifier":
        return values, base, np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64), PROBABILITY
    return values, base, np.asarray(model.decision_function(x), dtype=np.float64), LOG_ODDS
