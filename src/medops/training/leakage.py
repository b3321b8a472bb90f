"""Leakage checks that run before any training: each stops the run unless explicitly overridden.

- ``entity_overlap``: an entity (patient) on both sides of the split: the model is tested
  on people it has seen.
- ``future_feature``: a feature whose own timestamp is after its row's label time: the
  model learns from what was not yet known.
- ``perfect_predictor``: a feature that separates the training labels perfectly (a
  threshold for numbers, pure values for categories): almost always the label in
  disguise (a discharge code, a follow-up date).

Messages give counts and feature names, never entity ids or values. An override names
the checks it lets through; the caller records it (the run's parameters, the audit trail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.training.splits import Split

CHECKS = ("entity_overlap", "future_feature", "perfect_predictor")


@dataclass(frozen=True)
class Finding:
    check: str
    detail: str


class LeakageError(InvalidInput):
    """Training stopped: the data would leak; the message lists every finding."""

    code = "leakage"

    def __init__(self, findings: Sequence[Finding]) -> None:
        lines = "; ".join(f"{f.check}: {f.detail}" for f in findings)
        super().__init__(
            f"leakage checks failed: {lines}",
            hint="fix the data or the split; to go on anyway, allow the named checks explicitly (it is recorded)",
        )
        self.findings = list(findings)


def check_leakage(
    frame: pd.DataFrame,
    split: Split,
    *,
    label: str,
    features: Sequence[str],
    group: str | None = None,
    label_time: str | None = None,
    feature_times: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every finding of the three checks (an empty list is a pass)."""
    findings: list[Finding] = []
    if group is not None and group in frame.columns:
        ids = frame[group].astype("string")
        shared = set(ids.iloc[split.train].dropna()) & set(ids.iloc[split.test].dropna())
        if shared:
            findings.append(Finding("entity_overlap", f"{len(shared)} {group} values are in both train and test"))
    if feature_times:
        if label_time is None or label_time not in frame.columns:
            raise InvalidInput("feature times are given but the label time column is not", hint="pass label_time")
        at = pd.to_datetime(frame[label_time], utc=True)
        for feature, column in feature_times.items():
            if column not in frame.columns:
                raise InvalidInput(f"the time column {column!r} of feature {feature!r} is not in the data")
            late = int((pd.to_datetime(frame[column], utc=True) > at).sum())
            if late:
                findings.append(Finding("future_feature", f"{feature} is dated after the label time in {late} rows"))
    train = frame.iloc[split.train]
    y = train[label]
    for feature in features:
        if feature in train.columns and _separates(train[feature], y):
            findings.append(Finding("perfect_predictor", f"{feature} separates the training labels perfectly"))
    return findings


def _separates(x: pd.Series, y: pd.Series) -> bool:
    known = x.notna() & y.notna()
    x, y = x[known], y[known]
    classes = pd.unique(y)
    if len(classes) < 2 or len(x) < 10:
        return False
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) and len(classes) == 2:
        values = x.to_numpy(dtype=float)
        a, b = values[(y == classes[0]).to_numpy()], values[(y == classes[1]).to_numpy()]
        return bool(np.max(a) < np.min(b) or np.max(b) < np.min(a))
    if x.nunique() > 0.5 * len(x):
        return False  # near-unique values (an id) "predict" anything; not this check's concern
    return bool((pd.DataFrame({"x": x.astype("string"), "y": y}).groupby("x")["y"].nunique() == 1).all())


def enforce(findings: Sequence[Finding], allow: Sequence[str] = ()) -> list[Finding]:
    """Raise on any finding not allowed; return the allowed ones, for the caller to record."""
    unknown = [a for a in allow if a not in CHECKS]
    if unknown:
        raise InvalidInput(f"unknown leakage check {unknown[0]!r}", hint=f"checks: {', '.join(CHECKS)}")
    blocking = [f for f in findings if f.check not in allow]
    if blocking:
        raise LeakageError(blocking)
    return list(findings)
