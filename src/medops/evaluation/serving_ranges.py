"""The input ranges a registered model serves with, decided at validation so the two agree.

Ranges from the training rows alone are too strict: the test rows themselves hold an integer
count one above the training maximum, or a heart rate slightly beyond it, and a predictor
built on those ranges would refuse rows its own validation scored. The serving range of a
numeric feature is its contract's declared range when the feature is a contract column
(a plausible clinical range), else the training range widened by a stated margin. The
evaluation counts the test rows a predictor with these ranges would refuse and records the
ranges; registration puts exactly these into the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medops.evaluation.spec import ServingSpec
from medops.training.input_schema import InputSchema


def serving_schema(
    schema: InputSchema, train: pd.DataFrame, spec: ServingSpec, declared: Mapping[str, tuple[float, float]]
) -> tuple[InputSchema, dict[str, str]]:
    """The schema to serve with, and where each numeric range came from."""
    numeric: dict[str, tuple[float, float]] = {}
    origin: dict[str, str] = {}
    for name, (low, high) in schema.numeric.items():
        if name in declared:
            numeric[name] = (float(declared[name][0]), float(declared[name][1]))
            origin[name] = "contract"
            continue
        widen = spec.range_margin * (high - low)
        values = pd.to_numeric(train[name], errors="coerce").dropna() if name in train.columns else pd.Series([])
        counts = bool(len(values)) and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        note = f"training range widened by {spec.range_margin:g} of its width"
        if counts and widen < 1:  # whole numbers: the next count up is in range
            widen, note = 1.0, "training range widened by 1 (whole numbers)"
        numeric[name] = (low - widen, high + widen)
        origin[name] = note
    return InputSchema(numeric, dict(schema.categorical), list(schema.required)), origin


def refused_rows(schema: InputSchema, frame: pd.DataFrame) -> dict[str, Any]:
    """How many of these rows a predictor with ``schema`` would refuse, and for which features."""
    violations = schema.violations(frame)
    flagged = np.zeros(len(frame), dtype=bool)
    by_feature = {}
    for name, rows in violations.items():
        flagged |= rows
        if rows.any():
            by_feature[name] = int(rows.sum())
    return {"rows": int(flagged.sum()), "by_feature": by_feature}


def serving_doc(
    schema: InputSchema, origin: dict[str, str], spec: ServingSpec, refused: dict[str, Any]
) -> dict[str, Any]:
    """The serving section of the evaluation document; registration builds the bundle's input checks from it."""
    return {
        "out_of_range": spec.out_of_range,
        "range_margin": spec.range_margin,
        **schema.to_doc(),  # numeric, categorical, required: read back with InputSchema.from_doc
        "origin": origin,
        "test_rows_refused": refused["rows"],
        "refused_by_feature": refused["by_feature"],
    }
