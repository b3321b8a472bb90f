"""Performance once labels arrive, overall and per subgroup, against what the validation promised.

Outcomes come late: a 30-day readmission is known a month after discharge, a registry's death a
year later. A logged prediction is joined to the label of the same entity whose event time is
nearest its own, within ``match_within``, and only if that label was available by the time the
window is judged (``as_of``): a label recorded later is treated as not there yet, so a window
judged again later can only gain labels, and a backtest as of a past date sees what was known
then. The window's label completeness (labeled predictions over all its predictions) is reported,
and performance is judged only when enough labels arrived.

The metrics and their intervals are the clinical validation engine's (medops.evaluation.bootstrap:
AUROC, sensitivity, PPV, calibration slope and calibration-in-the-large), on the subgroups the
validation policy declared, where the log holds the attribute (a feature the model reads). Rows are
resampled whatever their label: a window's event rate is part of what is in question. A metric has
degraded when the drop from the validated value is larger than the tolerated drop (``max_drop``)
with the window's confidence, the drop's interval carrying both the window's uncertainty and the
validation's (a validated value is itself an estimate from a test set; taken as exact, a subgroup
that validated high by chance looks degraded later). A year of monthly windows, five metrics each
and their subgroups, judged on "the interval excludes the validated value" would raise false
alarms every year on a model that never changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from medops.evaluation.bootstrap import bootstrap
from medops.evaluation.spec import AttributeSpec
from medops.evaluation.subgroups import MISSING, band_labels, build_groups

JUDGED_METRICS = ("auroc", "sensitivity", "ppv", "calibration_slope", "calibration_intercept")
HIGHER_IS_BETTER = {"auroc": True, "sensitivity": True, "ppv": True}
# The calibration pair has an ideal value instead: judged on the distance from it.
IDEAL = {"calibration_slope": 1.0, "calibration_intercept": 0.0}


@dataclass
class Labeled:
    """A window's predictions that found their label: scores, outcomes, subgroup values."""

    rows: int = 0  # every prediction of the window
    with_entity: int = 0  # predictions that named an entity (only those can meet a label)
    y: list[np.ndarray] = field(default_factory=list)
    p: list[np.ndarray] = field(default_factory=list)
    attributes: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def labeled(self) -> int:
        return int(sum(len(y) for y in self.y))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        y = np.concatenate(self.y) if self.y else np.zeros(0, dtype=np.int8)
        p = np.concatenate(self.p) if self.p else np.zeros(0)
        return y, p, {k: np.concatenate(v) for k, v in self.attributes.items()}


def merge_labeled(parts: list[Labeled]) -> Labeled:
    """The labeled predictions of a window gathered in parts (a task's each), as one."""
    merged = Labeled()
    for part in parts:
        merged.rows += part.rows
        merged.with_entity += part.with_entity
        merged.y += part.y
        merged.p += part.p
        for name, values in part.attributes.items():
            merged.attributes.setdefault(name, []).extend(values)
    return merged


def join_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, as_of: datetime, match_within: timedelta
) -> pd.Series:
    """Each prediction's outcome (NaN when none was available by ``as_of``).

    ``predictions``: ``entity``, ``at``; ``labels``: ``entity``, ``time``, ``label``, ``available``
    (times timezone-aware). The label taken is the same entity's nearest in time within
    ``match_within``, among those available by ``as_of``.
    """
    out = pd.Series(np.nan, index=predictions.index, dtype=float)
    known = labels[(labels["available"] <= pd.Timestamp(as_of)) & labels["label"].notna()]
    asked = predictions[predictions["entity"].notna()]
    if asked.empty or known.empty:
        return out
    stamp = "datetime64[ns, UTC]"  # one key type on both sides, whatever each came as
    left = pd.DataFrame(
        {"entity": asked["entity"].astype(str).astype(object), "at": asked["at"].astype(stamp), "_row": asked.index}
    ).sort_values("at", kind="stable")
    right = pd.DataFrame(
        {"entity": known["entity"].astype(str).astype(object), "time": known["time"].astype(stamp),
         "label": known["label"].astype(float)}
    ).sort_values("time", kind="stable")  # fmt: skip
    joined = pd.merge_asof(
        left,
        right,
        left_on="at",
        right_on="time",
        by="entity",
        direction="nearest",
        tolerance=pd.Timedelta(match_within),
    )
    matched = joined[joined["label"].notna()]
    out.loc[matched["_row"].to_numpy()] = matched["label"].to_numpy(dtype=float)
    return out


def attribute_labels(values: Any, spec: AttributeSpec) -> np.ndarray:
    """A subgroup attribute's value per row, as the validation labelled it (bands for numbers)."""
    raw = pd.Series(values)
    if spec.bins is None:
        return np.asarray(raw.astype("string").fillna(MISSING).astype(str), dtype=object)
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    codes = np.searchsorted(np.asarray(spec.bins, dtype=float), numbers, side="right")
    bands = np.asarray(band_labels(spec.bins), dtype=object)[codes]
    return np.where(np.isnan(numbers), MISSING, bands)


def judge_performance(
    labeled: Labeled,
    reference: Mapping[str, Any],
    threshold: float,
    *,
    min_labels: int,
    min_completeness: float,
    max_drop: Mapping[str, float],
    resamples: int,
    level: float,
    seed: int = 0,
) -> dict[str, Any]:
    """The window's performance document: completeness, metrics with intervals, each against the reference."""
    y, p, attributes = labeled.arrays()
    completeness = labeled.labeled / labeled.rows if labeled.rows else 0.0
    doc: dict[str, Any] = {
        "rows": labeled.rows,
        "with_entity": labeled.with_entity,
        "labeled": labeled.labeled,
        "label_completeness": completeness,
        "min_labels": min_labels,
        "min_completeness": min_completeness,
    }
    both = len(y) > 0 and 0 < int(y.sum()) < len(y)
    doc["judged"] = labeled.labeled >= min_labels and completeness >= min_completeness and both
    if not doc["judged"]:
        doc["why_not_judged"] = (
            f"{labeled.labeled:,} labeled predictions ({completeness:.0%} of the window); judged from "
            f"{min_labels:,} and {min_completeness:.0%}" + ("" if both or not len(y) else "; one outcome only")
        )
        doc["metrics"], doc["subgroups"], doc["degraded"] = {}, [], []
        return doc
    names = list(attributes)
    groups = build_groups({k: pd.Series(v) for k, v in attributes.items()}, [], len(y))
    # Rows drawn whatever their label: a window's event rate is itself in question (calibration-in-the-large)
    dist = bootstrap(
        y, p, groups.strata, groups.membership, threshold, resamples=resamples, seed=seed, stratified=False
    )
    promised = reference.get("metrics", {})
    by_group = {(g.get("attribute"), g.get("group")): g for g in reference.get("subgroups", [])}
    subgroups: list[dict[str, Any]] = []
    for g in range(1, len(groups.names)):
        attribute, value = groups.names[g]
        rows = groups.membership[g][groups.strata]
        n, positives = int(rows.sum()), int(y[rows].sum())
        small = n < 30 or min(positives, n - positives) < 5
        subgroups.append({"attribute": attribute, "group": value, "n": n, "positives": positives, "too_small": small})
    # Bonferroni over the window's comparisons (each metric, overall and per subgroup judged), one-sided:
    # only a drop alarms. Without it a year of windows gives chance some 200 tries a scenario.
    comparisons = len(JUDGED_METRICS) * (1 + sum(not s["too_small"] for s in subgroups))
    z = NormalDist().inv_cdf(1 - (1 - level) / 2 / comparisons)
    doc["comparisons"], doc["z"] = comparisons, z
    promised_level = float(reference.get("level") or level)
    judged = partial(_judged, dist, level=level, z=z, promised_level=promised_level, max_drop=max_drop)
    doc["metrics"] = {m: judged(0, m, promised.get(m)) for m in JUDGED_METRICS}
    doc["degraded"] = [m for m, entry in doc["metrics"].items() if entry.get("degraded")]
    for g, entry in enumerate(subgroups, start=1):
        if not entry["too_small"]:
            was = by_group.get((entry["attribute"], entry["group"]), {}).get("metrics") or {}
            entry["metrics"] = {m: judged(g, m, was.get(m)) for m in JUDGED_METRICS}
            entry["degraded"] = [m for m, e in entry["metrics"].items() if e.get("degraded")]
    doc["subgroups"] = subgroups
    doc["attributes"] = names
    return doc


def _judged(
    dist: Any,
    group: int,
    metric: str,
    promised: Mapping[str, Any] | None,
    *,
    level: float,
    z: float,
    promised_level: float,
    max_drop: Mapping[str, float],
) -> dict[str, Any]:
    """A metric of the window against its promised value: degraded when the drop's lower bound (``z``
    standard errors, carrying the window's uncertainty and the validation's) is beyond ``max_drop``."""
    ci = dist.interval(group, metric, level)
    value = float(dist.exact[group, dist.metrics.index(metric)])
    entry: dict[str, Any] = {"value": value, "low": ci.low, "high": ci.high}
    if not promised or promised.get("value") is None:
        return entry
    was = float(promised["value"])
    entry["reference"] = was
    threshold = max_drop.get(metric)
    if metric in IDEAL:  # the calibration pair: judged on the distance from its ideal value
        ideal = IDEAL[metric]
        change = abs(value - ideal) - abs(was - ideal)
    else:
        change = was - value if HIGHER_IS_BETTER[metric] else value - was
    spread = math.hypot(
        _standard_error(ci.low, ci.high, level),
        _standard_error(promised.get("low"), promised.get("high"), promised_level),
    )
    entry["drop"] = change
    entry["drop_low"] = change - z * spread  # the drop is at least this, with the window's confidence
    entry["degraded"] = bool(
        threshold is not None and math.isfinite(entry["drop_low"]) and entry["drop_low"] > threshold
    )
    return entry


def _standard_error(low: Any, high: Any, level: float) -> float:
    """A percentile interval's width as a normal standard error; 0 for an interval not known."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return 0.0
    return (float(high) - float(low)) / (2 * NormalDist().inv_cdf((1 + level) / 2))
