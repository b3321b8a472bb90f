"""Explanations sum to the model's raw score, for every trainer, with one-hot columns folded back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medops.errors import InvalidInput
from medops.registry.compiled import compile_pipeline, from_doc, to_doc
from medops.serving.explain import LOG_ODDS, PROBABILITY, explain, explain_compiled
from medops.training.trainers import ModelSpec, fit


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(2, n), "c": rng.choice(["x", "y", "z"], n)})
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan
    signal = frame["a"].fillna(0) - frame["b"] / 4 + (frame["c"] == "y")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    return frame


def _raw(model: object, x: np.ndarray) -> np.ndarray:
    """The model's own raw score, asked of the model, not of the explainer."""
    if type(model).__name__ == "RandomForestClassifier":
        return np.asarray(model.predict_proba(x)[:, 1])  # type: ignore[attr-defined]
    return np.asarray(model.decision_function(x))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("estimator", "params", "scale"),
    [
        ("logistic_regression", {}, LOG_ODDS),
        ("random_forest", {"n_estimators": 15}, PROBABILITY),
        ("hist_gradient_boosting", {"max_iter": 20}, LOG_ODDS),
        ("lightgbm", {"n_estimators": 30}, LOG_ODDS),
    ],
)
def test_contributions_sum_to_the_raw_score(estimator: str, params: dict[str, int], scale: str) -> None:
    fitted = fit(_frame(900), ["a", "b", "c"], "label", ModelSpec(estimator, params), 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None
    rows = _frame(200, seed=2).drop(columns="label")
    rows.loc[3, "c"] = "never seen"  # all-zero one-hot: still explained
    got = explain_compiled(compiled, rows)
    assert got.features == ["a", "b", "c"] and got.contributions.shape == (200, 3) and got.scale == scale
    x = compiled.matrix(rows)
    if compiled.booster is not None:
        raw = np.asarray(compiled.booster.predict(x, raw_score=True))
    else:
        raw = _raw(compiled.model, x)
    assert np.allclose(got.contributions.sum(axis=1) + got.base, raw, rtol=0, atol=1e-6)
    assert np.allclose(got.raw, raw, rtol=0, atol=1e-12)
    probability = fitted.predict_proba(rows)
    total = got.contributions.sum(axis=1) + got.base
    assert np.allclose(total if scale == PROBABILITY else 1 / (1 + np.exp(-total)), probability, atol=1e-6)
    assert set(got.row(0)["contributions"]) == {"a", "b", "c"}


def test_a_lightgbm_bundle_form_is_explained_the_same() -> None:
    """The booster rebuilt from its text (as a bundle carries it) gives the same contributions."""
    import lightgbm

    fitted = fit(_frame(900), ["a", "b", "c"], "label", ModelSpec("lightgbm", {"n_estimators": 30}), 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None and compiled.booster is not None
    rebuilt = from_doc(
        json.loads(json.dumps(to_doc(compiled))), lightgbm.Booster(model_str=compiled.booster.model_to_string())
    )
    rows = _frame(50, seed=3).drop(columns="label")
    assert np.allclose(explain_compiled(rebuilt, rows).contributions, explain_compiled(compiled, rows).contributions)


def test_a_one_hot_feature_carries_its_category_effect() -> None:
    """The category that drives the label gets the contribution, under the input's name."""
    fitted = fit(_frame(3000), ["a", "b", "c"], "label", ModelSpec("logistic_regression"), 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None
    rows = pd.DataFrame({"a": [0.0, 0.0], "b": [2.0, 2.0], "c": ["y", "x"]})
    got = explain_compiled(compiled, rows)
    assert got.contributions[0, 2] - got.contributions[1, 2] > 0.5


def test_a_calibrated_model_is_refused() -> None:
    spec = ModelSpec("lightgbm", {"n_estimators": 10}, None, "sigmoid")
    fitted = fit(_frame(900), ["a", "b", "c"], "label", spec, 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None
    with pytest.raises(InvalidInput, match="calibrated"):
        explain_compiled(compiled, _frame(5).drop(columns="label"))


def test_a_registered_model_is_explained(registry: tuple[object, str]) -> None:
    from medops.registry import versions
    from medops.registry.predictor import load_model
    from tests.factories import cohort

    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")  # type: ignore[arg-type]
    predictor = load_model(ws, "readmission:1")  # type: ignore[arg-type]
    rows = cohort(40, biased=False, seed=5)
    got = explain(predictor, rows)
    total = got.contributions.sum(axis=1) + got.base
    assert np.allclose(1 / (1 + np.exp(-total)), predictor.predict_proba(rows), atol=1e-9)
    assert got.features == predictor.compiled.numeric + predictor.compiled.categorical  # type: ignore[union-attr]
