"""Robustness: how the model's performance moves when its inputs go wrong, and whether its input
checks notice.

Each perturbation changes a copy of the test set (seeded): Gaussian noise on every numeric
feature; a value just outside the training range in a share of rows; missing values; a
declared unit error (a temperature recorded in Fahrenheit where Celsius is expected). The
model scores the changed rows; the change in AUROC and Brier score, and the share of
changed rows the input checks flag, are reported for each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medops.evaluation.metrics import compute, exact_histogram
from medops.evaluation.spec import RobustnessSpec
from medops.training.input_schema import InputSchema

CAUGHT = 0.9  # the input checks "catch" a perturbation when they flag at least this share of changed rows


def perturbations(
    frame: pd.DataFrame, features: Sequence[str], schema: InputSchema, spec: RobustnessSpec
) -> list[tuple[str, str, pd.DataFrame, np.ndarray]]:
    """(name, description, changed copy, which rows changed) for each perturbation."""
    rng = np.random.default_rng(spec.seed)
    numeric = [f for f in features if f in schema.numeric]
    n = len(frame)
    out = []
    if numeric and spec.noise > 0:
        noisy = frame.copy()
        zeros = []
        for name in numeric:
            values = noisy[name].astype(float)
            sd = float(values.std()) or 1.0
            noisy[name] = values + rng.normal(0, spec.noise * sd, n)
            share = float((values == 0).mean()) if n else 0.0
            if share >= MOSTLY_ZERO:
                zeros.append(f"{name} {share:.0%}")
        description = f"Gaussian noise of {spec.noise:g} SD on {len(numeric)} numeric features"
        if zeros:  # a count that is mostly zero gets noise on its zeros too: say so, the change means less there
            description += f"; mostly zero, their zeros perturbed too: {', '.join(zeros[:6])}"
            description += f" and {len(zeros) - 6} more" if len(zeros) > 6 else ""
        out.append(("noise", description, noisy, _all(n)))
    if numeric and spec.out_of_range > 0:
        shifted = frame.copy()
        rows = rng.random(n) < spec.out_of_range
        picks = rng.integers(0, len(numeric), n)
        for i, name in enumerate(numeric):
            low, high = schema.numeric[name]
            width = (high - low) or 1.0
            at = rows & (picks == i)
            above = rng.random(n) < 0.5
            values = shifted[name].astype(float).to_numpy(copy=True)
            values[at & above] = high + 0.1 * width
            values[at & ~above] = low - 0.1 * width
            shifted[name] = values
        out.append(
            (
                "out_of_range",
                f"{spec.out_of_range:.0%} of rows: one numeric feature 10% of its range beyond the training range",
                shifted,
                rows,
            )
        )
    if spec.missing > 0 and len(features):
        holed = frame.copy()
        changed = np.zeros(n, dtype=bool)
        for name in features:
            at = (rng.random(n) < spec.missing) & frame[name].notna().to_numpy()
            if at.any():
                holed[name] = holed[name].mask(at)  # NaN or NA, whatever the column's type
            changed |= at
        out.append(("missing", f"{spec.missing:.0%} of values set missing, in every feature", holed, changed))
    for name, unit in spec.unit_errors.items():
        if name not in frame.columns:
            continue
        wrong = frame.copy()
        wrong[name] = wrong[name].astype(float) * unit.scale + unit.offset
        note = unit.note or f"x {unit.scale:g} + {unit.offset:g}"
        out.append((f"unit:{name}", f"{name} in the wrong unit ({note})", wrong, wrong[name].notna().to_numpy()))
    return out


MOSTLY_ZERO = 0.5  # a feature with at least this share of zeros is named in the noise test's description


def _all(n: int) -> np.ndarray:
    return np.ones(n, dtype=bool)


def run(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    y: np.ndarray,
    features: Sequence[str],
    schema: InputSchema,
    spec: RobustnessSpec,
    base: np.ndarray,
) -> list[dict[str, Any]]:
    """Performance under each perturbation, against ``base`` (the unchanged predictions)."""
    before = compute(exact_histogram(y, base, 0.5), metrics=("auroc", "brier"))
    rows = []
    for name, description, changed, which in perturbations(frame, features, schema, spec):
        after = compute(exact_histogram(y, predict(changed), 0.5), metrics=("auroc", "brier"))
        flagged = schema.flagged(changed)
        touched = int(which.sum())
        rate = float(flagged[which].mean()) if touched else float("nan")
        rows.append(
            {
                "name": name,
                "description": description,
                "rows_changed": touched,
                "auroc": float(after["auroc"]),
                "auroc_change": float(after["auroc"] - before["auroc"]),
                "brier": float(after["brier"]),
                "brier_change": float(after["brier"] - before["brier"]),
                "flagged_rate": rate,
                "caught": bool(touched and rate >= CAUGHT),
            }
        )
    return rows
