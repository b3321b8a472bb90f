"""Trainers: one fitted pipeline holds preprocessing and model, so serving applies what training did.

The pipeline imputes (median for numbers, most frequent for categories), scales numbers
(for the estimators that declare it: the linear model), one-hot encodes categories
(unknown ones at serving become all zeros) and fits one of the estimators declared in
``medops.training.estimators``: logistic regression, random forest, histogram gradient
boosting (scikit-learn) or LightGBM. Class imbalance is handled by class weights;
probability calibration (Platt = sigmoid, or isotonic) is fitted on a held-out fold.

Everything is checked before any fitting: the estimator and each of its parameters, the
feature and label columns, a label with missing values or a single class. Seeds are fixed
and LightGBM runs in its deterministic mode, so the same data, settings and seed give a
byte-identical model file.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.training.estimators import get_trainer

Calibration = Literal["sigmoid", "isotonic"]


@dataclass(frozen=True)
class ModelSpec:
    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    class_weight: Literal["balanced"] | None = None
    calibration: Calibration | None = None
    resample: Literal["over", "under"] | None = None


def estimator_for(spec: ModelSpec, seed: int) -> Any:
    """The estimator ``spec`` names (see ``medops.training.estimators``), with its parameters checked and set."""
    base = get_trainer(spec.estimator).build(seed)
    known = base.get_params()
    for name in spec.params:
        if name not in known or name in ("random_state", "n_jobs"):
            allowed = ", ".join(sorted(k for k in known if k not in ("random_state", "n_jobs")))
            raise InvalidInput(f"{spec.estimator} has no parameter {name!r}", hint=f"its parameters: {allowed}")
    # One order and interned strings, whatever the source (code, YAML, a recipe): the model file
    # must be the same bytes (see model_file.py).
    settings = {sys.intern(k): _interned(v) for k, v in sorted(spec.params.items())}
    if spec.class_weight:
        settings["class_weight"] = sys.intern(spec.class_weight)
    try:
        base.set_params(**settings)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{spec.estimator}: {exc}") from None
    return base


def _interned(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def check_training_data(frame: pd.DataFrame, features: Sequence[str], label: str) -> None:
    """The columns exist and the label is usable: named errors, before any work."""
    missing = [c for c in [*features, label] if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"column {missing[0]!r} is not in the training data", hint=f"columns: {', '.join(map(str, frame.columns))}"
        )
    if not features:
        raise InvalidInput("no features to train on")
    y = frame[label]
    if y.isna().any():
        raise InvalidInput(
            f"label {label!r} is missing in {int(y.isna().sum())} rows",
            hint="drop rows whose outcome is not known yet (a label delay) before training",
        )
    classes = pd.unique(y)
    if len(classes) < 2:
        raise InvalidInput(f"label {label!r} has one class only ({classes[0]!r}): there is nothing to learn")


def build_pipeline(frame: pd.DataFrame, features: Sequence[str], spec: ModelSpec, seed: int) -> Any:
    """Preprocessing and model in one scikit-learn Pipeline (not fitted)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = estimator_for(spec, seed)
    numeric = [
        c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in features if c not in numeric]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if get_trainer(spec.estimator).scale_numbers:
        numeric_steps.append(("scale", StandardScaler()))
    prep = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    if spec.calibration:
        from sklearn.calibration import CalibratedClassifierCV

        model = CalibratedClassifierCV(model, method=spec.calibration, cv=3)
    return Pipeline([("prep", prep), ("model", model)])


def prepare(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Plain NumPy-backed columns (Arrow-backed or nullable ones confuse some estimators)."""
    out = {}
    for c in features:
        column = frame[c]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            out[c] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            out[c] = column.astype("object").where(column.notna(), np.nan)
    return pd.DataFrame(out, index=frame.index)


@dataclass
class FittedModel:
    pipeline: Any
    features: list[str]
    classes: list[Any]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(prepare(frame, self.features))[:, 1])

    def to_bytes(self) -> bytes:
        """The model file, in skops format (no pickle): see ``medops.training.model_file``."""
        from medops.training.model_file import dumps

        return dumps(self)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()


def resample(frame: pd.DataFrame, label: str, how: Literal["over", "under"], seed: int) -> pd.DataFrame:
    """Rows drawn (seeded) so every class has as many as the largest ("over") or smallest ("under") one."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero((frame[label] == value).to_numpy()) for value in np.unique(frame[label])]
    target = max(len(g) for g in groups) if how == "over" else min(len(g) for g in groups)
    picked = [g if len(g) == target else rng.choice(g, size=target, replace=how == "over") for g in groups]
    return frame.iloc[np.sort(np.concatenate(picked))]


def fit(frame: pd.DataFrame, features: Sequence[str], label: str, spec: ModelSpec, seed: int) -> FittedModel:
    # Pickle writes a string once per object, so the same names held as shared or as separate
    # objects (read from a frame, or from a recipe) would give different bytes: intern them.
    features = [sys.intern(str(f)) for f in features]
    check_training_data(frame, features, label)
    if spec.resample:
        frame = resample(frame, label, spec.resample, seed)
    pipeline = build_pipeline(frame, features, spec, seed)
    y = frame[label].to_numpy()
    pipeline.fit(prepare(frame, features), y)
    return FittedModel(pipeline, list(features), [v.item() if hasattr(v, "item") else v for v in np.unique(y)])
