"""What a model accepts: each numeric feature's training range, each category seen, the features
never missing in training. Stored with the run; serving and the robustness tests check inputs
against it, so a value the model never saw is flagged rather than silently scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_CATEGORIES = 200  # a column with more distinct values is not checked by category
SMALL = 256  # rows up to which checks loop in Python rather than call pandas


@dataclass(frozen=True)
class InputSchema:
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: Sequence[str]) -> InputSchema:
        numeric: dict[str, tuple[float, float]] = {}
        categorical: dict[str, list[str]] = {}
        for name in features:
            column = frame[name]
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                known = column.dropna()
                if len(known):
                    numeric[name] = (float(known.min()), float(known.max()))
            else:
                seen = sorted({str(v) for v in column.dropna().unique()})
                if len(seen) <= MAX_CATEGORIES:
                    categorical[name] = seen
        required = [name for name in features if frame[name].notna().all()]
        return cls(numeric, categorical, required)

    def to_doc(self) -> dict[str, Any]:
        return {
            "numeric": {k: list(v) for k, v in self.numeric.items()},
            "categorical": self.categorical,
            "required": self.required,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_doc(), sort_keys=True)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> InputSchema:
        numeric = {k: (float(v[0]), float(v[1])) for k, v in doc.get("numeric", {}).items()}
        return cls(numeric, dict(doc.get("categorical", {})), list(doc.get("required", [])))

    @classmethod
    def from_json(cls, text: str | bytes) -> InputSchema:
        return cls.from_doc(json.loads(text))

    def violations(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per checked feature, which rows break it: out of range, an unseen category, or missing."""
        names = {*self.numeric, *self.categorical, *self.required}
        return self.check_columns({n: frame[n].to_numpy() for n in names if n in frame.columns}, len(frame))

    def check_columns(self, columns: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """The same checks on plain arrays (one per feature): a serving call pays no pandas overhead."""
        out: dict[str, np.ndarray] = {}
        for name, (low, high) in self.numeric.items():
            if name in columns:
                values = as_numbers(columns[name])
                out[name] = (values < low) | (values > high)
        for name, allowed in self.categorical.items():
            if name not in columns:
                continue
            if n > SMALL:  # many rows: pandas' vectorized isin; a few: plain Python, without its overhead
                column = pd.Series(columns[name])
                out[name] = (column.notna() & ~column.astype(str).isin(allowed)).to_numpy()
            else:
                known = set(allowed)
                out[name] = np.fromiter(
                    (not is_missing(v) and str(v) not in known for v in columns[name]), dtype=bool, count=n
                )
        for name in self.required:
            if name not in columns:
                out[name] = np.ones(n, dtype=bool)
                continue
            values = columns[name]
            if name in self.numeric:
                absent = np.isnan(as_numbers(values))
            elif n > SMALL:
                absent = pd.isna(pd.Series(values, dtype=object)).to_numpy()
            else:
                absent = np.fromiter((is_missing(v) for v in values), dtype=bool, count=n)
            out[name] = out.get(name, np.zeros(n, dtype=bool)) | absent
        return out

    def flagged(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows that break any check."""
        flags = np.zeros(len(frame), dtype=bool)
        for rows in self.violations(frame).values():
            flags |= rows
        return flags


def as_numbers(values: np.ndarray) -> np.ndarray:
    """Floats, NaN for missing or non-numbers (as pd.to_numeric(errors="coerce") gives)."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)
