"""Between-group fairness: the largest gap between any two eligible groups of an attribute.

A gap to the overall population can hide a disparity: with three groups, two can sit on
either side of the population, each within the limit, while they are twice the limit
apart. Fairlearn reports this as a metric frame's between-groups difference (highest
group minus lowest) and ratio (lowest over highest); the same numbers come here from the
bootstrap's groups, with paired intervals (each resample's highest minus its lowest).
Groups too small to judge take no part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medops.evaluation.bootstrap import Distribution, percentile_interval
from medops.evaluation.spec import GAPS

# The metric each named gap compares; equalized odds compares two and takes the worse.
GAP_METRICS: dict[str, tuple[str, ...]] = {
    "equal_opportunity": ("sensitivity",),
    "equalized_odds": ("sensitivity", "fpr"),
    "demographic_parity": ("selection_rate",),
    "calibration": ("ece",),
}


def between_groups(
    dist: Distribution,
    names: Sequence[tuple[str, str]],
    eligible: Sequence[int],
    gaps: Sequence[str],
    level: float,
) -> list[dict[str, Any]]:
    """Per attribute (or intersection) with two or more eligible groups: each gap's difference and ratio."""
    by_attribute: dict[str, list[int]] = {}
    for g in eligible:
        by_attribute.setdefault(names[g][0], []).append(g)
    out = []
    for attribute, members in by_attribute.items():
        if len(members) < 2:
            continue
        doc: dict[str, Any] = {"attribute": attribute, "groups": [names[g][1] for g in members], "gaps": {}}
        for gap in gaps:
            metrics = GAP_METRICS.get(gap, (gap,)) if gap in GAPS or gap in dist.metrics else ()
            if not metrics:
                continue
            doc["gaps"][gap] = _one(dist, names, members, metrics, level)
        out.append(doc)
    return out


def _one(
    dist: Distribution, names: Sequence[tuple[str, str]], members: list[int], metrics: tuple[str, ...], level: float
) -> dict[str, Any]:
    exact_diffs, exact_ratios, boot_diffs, boot_ratios, extremes = [], [], [], [], []
    for metric in metrics:
        m = dist.metrics.index(metric)
        values = dist.exact[members, m]
        high, low = int(np.nanargmax(values)), int(np.nanargmin(values))
        exact_diffs.append(float(values[high] - values[low]))
        exact_ratios.append(_ratio(float(values[low]), float(values[high])))
        resampled = dist.resampled[members, m]  # (groups, resamples)
        with np.errstate(invalid="ignore", divide="ignore"):
            top, bottom = np.nanmax(resampled, axis=0), np.nanmin(resampled, axis=0)
            boot_diffs.append(top - bottom)
            boot_ratios.append(np.where(top > 0, bottom / top, np.where(top == 0, 1.0, np.nan)))
        extremes.append((names[members[high]][1], names[members[low]][1]))
    worst = int(np.argmax(exact_diffs))  # equalized odds: the worse of its two rates
    diff = percentile_interval(np.max(np.stack(boot_diffs), axis=0), level)
    ratio = percentile_interval(np.min(np.stack(boot_ratios), axis=0), level)
    return {
        "value": exact_diffs[worst],
        "low": diff.low,
        "high": diff.high,
        "ratio": min(exact_ratios),
        "ratio_low": ratio.low,
        "ratio_high": ratio.high,
        "highest": extremes[worst][0],
        "lowest": extremes[worst][1],
    }


def _ratio(low: float, high: float) -> float:
    if high > 0:
        return low / high
    return 1.0 if high == 0 and low == 0 else float("nan")
