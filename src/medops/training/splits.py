"""Train/test splits that respect patients and time, and the record of how a split was made.

- ``grouped``: whole entities (patients) go to one side, so no patient is in both.
- ``temporal``: rows before ``cutoff`` train, rows at or after it test (the way a model
  meets the future); with ``group`` also set, an entity seen before the cutoff stays out
  of the test side.
- ``period``: like ``temporal``, on a coarse period kept as a number (the year Safe Harbor
  allows): rows of periods at or after ``cutoff`` test. Use it where dates were shifted per
  patient, which moves rows across a date cutoff but never across a recorded year.
- ``stratified``: the label's share kept equal on both sides (rows, not entities: use it
  only where rows are independent).

Every split is deterministic given its seed and the rows' order (never the values of
pseudonymized ids, which change with the workspace's key), and returns a description that the run
records (kind, sizes, label shares, the cutoff or seed), so a split can be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from medops.errors import InvalidInput

SplitKind = Literal["grouped", "temporal", "period", "stratified"]


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)


def _require(frame: pd.DataFrame, column: str | None, role: str) -> str:
    if not column:
        raise InvalidInput(f"a {role} column is needed for this split")
    if column not in frame.columns:
        raise InvalidInput(
            f"the {role} column {column!r} is not in the data", hint=f"columns: {', '.join(map(str, frame.columns))}"
        )
    return column


def make_split(
    frame: pd.DataFrame,
    kind: SplitKind,
    *,
    label: str,
    group: str | None = None,
    time: str | None = None,
    cutoff: datetime | str | int | float | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> Split:
    """Row positions of the train and test sides, and what the run should record about them."""
    _require(frame, label, "label")
    if not 0 < test_size < 1:
        raise InvalidInput(f"test_size {test_size} is not between 0 and 1")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(frame))
    if kind == "grouped":
        groups = frame[_require(frame, group, "group")].astype("string").fillna("<missing>").to_numpy()
        # Groups in order of first appearance, then a seeded permutation: pseudonyms differ from one
        # workspace's key to another's, their sorted order with them, but the rows' order does not.
        unique = pd.unique(groups)
        rng.shuffle(unique)
        held = set(unique[: max(1, round(len(unique) * test_size))].tolist())
        is_test = np.fromiter((g in held for g in groups), bool, len(groups))
        extra: dict[str, Any] = {"group": group, "test_size": test_size, "seed": seed, "groups": len(unique)}
    elif kind in ("temporal", "period"):
        if kind == "temporal":
            when = _timestamps(frame, _require(frame, time, "time"))
            if cutoff is None:
                cutoff = when.quantile(1 - test_size)
            moment = pd.Timestamp(cutoff)
            moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
            known = when.notna().to_numpy()
            is_test = (when >= moment).to_numpy() & known
            extra = {"time": time, "cutoff": moment.isoformat(), "timeline": "as stored"}
        else:
            column = frame[_require(frame, time, "period")]
            if pd.api.types.is_datetime64_any_dtype(column):
                raise InvalidInput(
                    f"the period column {time!r} holds timestamps: a period split reads a number such as the year",
                    hint="use a year column (deidentify action 'year' keeps one), or the temporal split",
                )
            period = pd.to_numeric(column, errors="coerce")
            known = period.notna().to_numpy()
            if not known.any():
                raise InvalidInput(f"the period column {time!r} holds no number (a year such as 2019 is expected)")
            bound = _period_cutoff(period[known], cutoff, test_size)
            is_test = (period >= bound).to_numpy() & known
            extra = {"time": time, "cutoff": bound, "timeline": "period (a coarse, unshifted calendar unit)"}
        extra["rows_without_time"] = int((~known).sum())  # placed on neither side: their period is unknown
        keep = known.copy()
        if group:
            groups = frame[_require(frame, group, "group")].astype("string").to_numpy()
            seen = set(groups[keep & ~is_test].tolist())
            overlap = np.fromiter((g in seen for g in groups), bool, len(groups)) & is_test
            is_test = is_test & ~overlap  # test rows of entities already seen in training are dropped
            keep &= ~overlap
            extra.update({"group": group, "dropped_test_rows_of_seen_entities": int(overlap.sum())})
        train, test = rows[keep & ~is_test], rows[is_test]
        return Split(train, test, _describe(frame, label, kind, train, test, extra))
    elif kind == "stratified":
        labels = frame[label].to_numpy()
        is_test = np.zeros(len(frame), bool)
        for value in pd.unique(labels):
            members = rows[labels == value]
            rng.shuffle(members)
            is_test[members[: round(len(members) * test_size)]] = True
        extra = {"test_size": test_size, "seed": seed}
    else:
        raise InvalidInput(f"split {kind!r} is not known", hint="grouped, temporal, period or stratified")
    train, test = rows[~is_test], rows[is_test]
    return Split(train, test, _describe(frame, label, kind, train, test, extra))


def _timestamps(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise InvalidInput(
            f"the time column {column!r} holds numbers, not timestamps",
            hint="for a year (or another coarse period kept as a number) use the period split",
        )
    try:
        return pd.to_datetime(values, utc=True)
    except (ValueError, TypeError):
        raise InvalidInput(f"the time column {column!r} is not a timestamp") from None


def _period_cutoff(period: pd.Series, cutoff: Any, test_size: float) -> float | int:
    """The first period that goes to the test side: given, else the one where the last ``test_size`` begins."""
    if cutoff is not None:
        try:
            bound = float(cutoff)
        except (TypeError, ValueError):
            raise InvalidInput(f"the period cutoff {cutoff!r} is not a number (a year such as 2019)") from None
    else:
        bound = float(period.quantile(1 - test_size, interpolation="higher"))
    return int(bound) if bound.is_integer() else bound


def _describe(
    frame: pd.DataFrame, label: str, kind: str, train: np.ndarray, test: np.ndarray, extra: dict[str, Any]
) -> dict[str, Any]:
    if len(train) == 0 or len(test) == 0:
        raise InvalidInput(f"the {kind} split left the {'training' if len(train) == 0 else 'test'} side empty")
    y = frame[label]
    return {
        "kind": kind,
        "train_rows": len(train),
        "test_rows": len(test),
        "train_label_mean": float(pd.to_numeric(y.iloc[train], errors="coerce").mean()),
        "test_label_mean": float(pd.to_numeric(y.iloc[test], errors="coerce").mean()),
        **extra,
    }
