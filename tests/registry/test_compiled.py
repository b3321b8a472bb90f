"""The compiled inference gives the pipeline's own probabilities, bit for bit, for every trainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medops.registry.compiled import compile_pipeline
from medops.training.trainers import ModelSpec, fit


def _frame(n: int, categorical: bool) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(2, n)})
    if categorical:
        frame["c"] = rng.choice(["x", "y", "z"], n)
        frame.loc[rng.random(n) < 0.1, "c"] = None
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-frame["a"].fillna(0) - frame["b"] / 4))).astype(int)
    return frame


@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize(
    ("estimator", "params", "calibration"),
    [
        ("lightgbm", {"n_estimators": 30}, None),
        ("logistic_regression", {}, None),
        ("random_forest", {"n_estimators": 10}, None),
        ("hist_gradient_boosting", {"max_iter": 20}, None),
        ("lightgbm", {"n_estimators": 30}, "sigmoid"),
    ],
)
def test_compiled_equals_the_pipeline(
    estimator: str, params: dict[str, int], calibration: str | None, categorical: bool
) -> None:
    frame = _frame(1200, categorical)
    features = ["a", "b", "c"] if categorical else ["a", "b"]
    model = fit(frame, features, "y", ModelSpec(estimator, params, None, calibration), 0)
    compiled = compile_pipeline(model.pipeline)
    assert compiled is not None
    test = _frame(300, categorical).drop(columns="y")
    if categorical:
        test.loc[3, "c"] = "never seen"  # one-hot of an unknown category: all zeros, as the pipeline does
    test.loc[4, "a"] = np.nan
    assert np.array_equal(compiled.predict_proba(test), model.predict_proba(test))
    assert np.array_equal(compiled.predict_proba(test.iloc[[7]]), model.predict_proba(test.iloc[[7]]))


def test_an_unknown_shape_is_not_compiled() -> None:
    from sklearn.linear_model import LogisticRegression

    assert compile_pipeline(LogisticRegression()) is None


@pytest.mark.parametrize("categorical", [True, False])
def test_a_lightgbm_bundle_form_needs_no_pipeline(categorical: bool) -> None:
    """The statistics through JSON and the booster through LightGBM's text: still the same numbers."""
    import json

    import lightgbm

    from medops.registry.compiled import from_doc, to_doc

    frame = _frame(1200, categorical)
    features = ["a", "b", "c"] if categorical else ["a", "b"]
    model = fit(frame, features, "y", ModelSpec("lightgbm", {"n_estimators": 40}), 0)
    compiled = compile_pipeline(model.pipeline)
    assert compiled is not None and compiled.booster is not None
    doc = json.loads(json.dumps(to_doc(compiled)))
    rebuilt = from_doc(doc, lightgbm.Booster(model_str=compiled.booster.model_to_string()))
    test = _frame(300, categorical).drop(columns="y")
    assert np.array_equal(rebuilt.predict_proba(test), model.predict_proba(test))
