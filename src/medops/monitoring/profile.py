"""The reference profile of a registered version: what monitoring compares every window with.

Computed from the version's training rows (features) and its evaluation (the held-out scores,
the threshold, the performance with intervals overall and per subgroup), so a window is judged
against what the model learned from and what its validation promised. Per feature: its kind,
missing rate, mean and standard deviation, the summary on the grid every window is counted on
(medops.monitoring.summary), and the plausible ranges the unit check uses. A stored profile is
never changed: the grid it fixes is what makes windows comparable over the model's life.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medops.monitoring.summary import CategorySummary, NumericSummary, numeric_grid
from medops.monitoring.units import Plausible
from medops.training.input_schema import InputSchema

FORMAT = 1
SCORE = "score"  # the profile's name for the model's output
SUBGROUP_KEYS = ("attribute", "group", "n", "positives", "too_small", "metrics", "gaps")


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    kind: str  # "numeric" or "categorical"
    rows: int
    missing_rate: float
    numeric: NumericSummary | None = None
    categories: CategorySummary | None = None
    mean: float | None = None
    std: float | None = None
    plausible: Plausible | None = None
    served_range: tuple[float, float] | None = None  # outside it, the served model flags a value

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "missing_rate": self.missing_rate}
        if self.numeric is not None:
            doc |= {"mean": self.mean, "std": self.std, "summary": self.numeric.to_doc()}
            doc["plausible"] = None if self.plausible is None else self.plausible.to_doc()
            doc["served_range"] = None if self.served_range is None else list(self.served_range)
        if self.categories is not None:
            doc["summary"] = self.categories.to_doc()
        return doc

    @classmethod
    def from_doc(cls, name: str, doc: Mapping[str, Any]) -> FeatureProfile:
        if doc["kind"] == "numeric":
            plausible = doc.get("plausible")
            return cls(
                name,
                "numeric",
                int(doc["rows"]),
                float(doc["missing_rate"]),
                numeric=NumericSummary.from_doc(doc["summary"]),
                mean=doc.get("mean"),
                std=doc.get("std"),
                plausible=None if plausible is None else Plausible.from_doc(plausible),
                served_range=_pair(doc.get("served_range")),
            )
        categories = CategorySummary.from_doc(doc["summary"])
        return cls(name, "categorical", int(doc["rows"]), float(doc["missing_rate"]), categories=categories)


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def numeric_feature(name: str, values: np.ndarray, served_range: tuple[float, float] | None = None) -> FeatureProfile:
    numbers = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    summary = NumericSummary.of(numbers, numeric_grid(numbers))
    known = numbers[np.isfinite(numbers)]
    rows = len(numbers)
    return FeatureProfile(
        name,
        "numeric",
        rows,
        summary.missing / rows if rows else 0.0,
        numeric=summary,
        mean=float(known.mean()) if len(known) else None,
        std=float(known.std(ddof=1)) if len(known) > 1 else None,
        plausible=Plausible.of(known),
        served_range=served_range,
    )


def categorical_feature(name: str, values: Sequence[Any] | np.ndarray) -> FeatureProfile:
    column = pd.Series(values, dtype=object)
    summary = CategorySummary.of(None if pd.isna(v) else v for v in column)
    rows = len(column)
    return FeatureProfile(name, "categorical", rows, summary.missing / rows if rows else 0.0, categories=summary)


@dataclass(frozen=True)
class ReferenceProfile:
    """Features, the score distribution, and the validated performance of one version."""

    features: dict[str, FeatureProfile]
    score: FeatureProfile
    threshold: float
    above_threshold: float  # the share of held-out scores at or above the threshold
    performance: dict[str, Any]  # the evaluation's metrics and subgroups, with intervals
    rows: int

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "features": {name: f.to_doc() for name, f in self.features.items()},
            "score": self.score.to_doc(),
            "threshold": self.threshold,
            "above_threshold": self.above_threshold,
            "performance": self.performance,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ReferenceProfile:
        if doc.get("format") != FORMAT:
            raise ValueError(f"reference profile format {doc.get('format')!r}; this medops reads {FORMAT}")
        return cls(
            {name: FeatureProfile.from_doc(name, f) for name, f in doc["features"].items()},
            FeatureProfile.from_doc(SCORE, doc["score"]),
            float(doc["threshold"]),
            float(doc["above_threshold"]),
            dict(doc["performance"]),
            int(doc["rows"]),
        )


def build(
    train: pd.DataFrame,
    features: Sequence[str],
    schema: InputSchema,
    scores: np.ndarray,
    threshold: float,
    evaluation: Mapping[str, Any],
) -> ReferenceProfile:
    """The profile of ``features`` in the training rows and of the held-out ``scores``.

    ``schema`` is the one the version serves with: a feature it checks by range is numeric (and
    keeps that range), one it checks by category is categorical; any other (a free-text column
    with too many values) is left out.
    """
    profiled: dict[str, FeatureProfile] = {}
    for name in features:
        if name not in train.columns:
            continue
        if name in schema.numeric:
            profiled[name] = numeric_feature(name, train[name].to_numpy(), schema.numeric[name])
        elif name in schema.categorical:
            profiled[name] = categorical_feature(name, train[name].to_numpy())
    held_out = np.asarray(scores, dtype=float)
    return ReferenceProfile(
        profiled,
        numeric_feature(SCORE, held_out),
        float(threshold),
        float(np.mean(held_out >= threshold)) if len(held_out) else 0.0,
        performance_of(evaluation),
        len(train),
    )


def performance_of(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """What the evaluation promised: overall metrics and each subgroup's, with their intervals."""
    groups = (evaluation.get("subgroups") or {}).get("groups") or []
    return {
        "evaluation": evaluation.get("id"),
        "metrics": evaluation.get("metrics", {}),
        "level": (evaluation.get("bootstrap") or {}).get("level"),
        "subgroups": [{k: g[k] for k in SUBGROUP_KEYS if k in g} for g in groups],
        "attributes": (evaluation.get("subgroups") or {}).get("attributes") or {},
    }
