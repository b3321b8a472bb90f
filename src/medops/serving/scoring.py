"""Scoring checked rows, and the one function that builds each row's response.

``prediction`` is the single place a response row is made: what a prediction log, an
explanation or a shadow variant adds later goes there, so every caller gets the same form.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from medops.serving.models import ServedModel
from medops.serving.validation import Checked, check_rows


def score(model: ServedModel, records: list[Any]) -> list[dict[str, Any]]:
    """Each record checked against the model's input schema, scored, and answered (RowsInvalid if any fails)."""
    checked = check_rows(records, model.input_schema)
    probabilities = _probabilities(model, checked)
    return [prediction(model, float(p), checked.flags[i]) for i, p in enumerate(probabilities)]


def _probabilities(model: ServedModel, checked: Checked) -> np.ndarray:
    predictor = model.predictor
    if predictor.compiled is not None:
        return predictor.compiled.predict_columns(checked.columns, checked.rows)
    import pandas as pd

    frame = pd.DataFrame({name: checked.columns[name] for name in predictor.features})
    return predictor.predict_proba(frame, check=False)


def prediction(model: ServedModel, probability: float, flags: list[str]) -> dict[str, Any]:
    """One row's answer: the probability, the decision at the validated threshold, and which model gave it."""
    row: dict[str, Any] = {
        "prediction_id": str(uuid.uuid4()),
        "probability": probability,
        "decision": int(probability >= model.threshold),
        "threshold": model.threshold,
        "model": model.name,
        "version": model.version,
        "bundle_sha256": model.bundle_sha256,
    }
    if flags:
        row["out_of_range"] = flags  # scored under the model's ``flag`` policy: outside what it was trained on
    return row
