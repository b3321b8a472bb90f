"""A window's verdicts against its reference: feature drift, prediction drift, data quality.

Every verdict names the statistic that made it, its value and threshold and the p-value beside
it; a window smaller than ``min_rows`` is reported with its statistics but judged on nothing.
The flat ``metrics`` map (``drift.age_years.psi``, ``quality.temperature_max_30d.out_of_range``,
``prediction.psi``...) is what alert rules name.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from medops.monitoring.profile import FeatureProfile, ReferenceProfile
from medops.monitoring.spec import MonitorSpec
from medops.monitoring.statistics import Statistic, chi_squared, jensen_shannon, ks, psi, wasserstein
from medops.monitoring.summary import CategorySummary, NumericSummary
from medops.monitoring.window import Window


def _effect(stat: Statistic, threshold: float, p_value: float | None, alpha: float) -> dict[str, Any]:
    material = not math.isnan(stat.value) and stat.value >= threshold
    significant = p_value is not None and p_value < alpha
    return {**stat.to_doc(), "threshold": threshold, "material": material, "significant": significant}


def numeric_drift(reference: FeatureProfile, current: NumericSummary, spec: MonitorSpec, a: float) -> dict[str, Any]:
    """PSI, KS and Wasserstein (in reference standard deviations) of one numeric feature; ``a`` is the
    level each p-value is judged at (the window's share of the spec's alpha)."""
    assert reference.numeric is not None
    d = spec.drift
    base = reference.numeric
    p_index, k, w = psi(base, current), ks(base, current), wasserstein(base, current)
    scale = reference.std if reference.std and reference.std > 0 else None
    scaled = Statistic("wasserstein_sd", w.value / scale if scale else float("nan"))
    found = [
        _effect(p_index, d.psi, p_index.p_value, a),
        _effect(k, d.ks, k.p_value, a),
        {**w.to_doc(), "unit": "the feature's"},
        _effect(scaled, d.wasserstein, k.p_value, a),  # judged with the KS test's p-value
    ]
    return {"kind": "numeric", "statistics": found}


def categorical_drift(
    reference: FeatureProfile, current: CategorySummary, spec: MonitorSpec, a: float
) -> dict[str, Any]:
    """Chi-squared with Cramer's V, and Jensen-Shannon distance, of one categorical feature at level ``a``."""
    assert reference.categories is not None
    d = spec.drift
    chi, v = chi_squared(reference.categories, current)
    js = jensen_shannon(reference.categories, current)
    found = [
        {**chi.to_doc()},
        _effect(v, d.cramers_v, chi.p_value, a),
        _effect(js, d.jensen_shannon, chi.p_value, a),  # judged with the chi-squared p-value
    ]
    new = {k: n for k, n in current.counts.items() if k not in reference.categories.counts}
    return {"kind": "categorical", "statistics": found, "new_categories": dict(sorted(new.items()))}


def _missing(
    reference: FeatureProfile, missing: int, rows: int, spec: MonitorSpec, judged: bool, alpha: float
) -> dict[str, Any]:
    share = missing / rows if rows else 0.0
    change = share - reference.missing_rate
    # one-sided z-test of the two shares: is the increase above the threshold beyond chance? (tested
    # against the threshold, not against no change: a year of small windows and a dozen features
    # would otherwise flag a chance excess somewhere every few months)
    threshold = spec.quality.missing_increase
    ref = reference.missing_rate
    se = math.sqrt(share * (1 - share) / max(rows, 1) + ref * (1 - ref) / max(reference.rows, 1))
    p = float(stats.norm.sf((change - threshold) / se)) if se > 0 else (0.0 if change > threshold else 1.0)
    return {
        "reference": reference.missing_rate,
        "current": share,
        "increase": change,
        "p_value": p,
        "threshold": threshold,
        "flagged": judged and change >= threshold and p < alpha,
    }


def _share(count: int, present: int, threshold: float, alpha: float, judged: bool) -> dict[str, Any]:
    """A share of rows against its threshold: flagged when it reaches it and a one-sided binomial test
    says the true share is above it (p < alpha), so a few stray values in a small window don't flag."""
    share = count / present if present else 0.0
    p = float(stats.binom.sf(count - 1, present, threshold)) if present and count else 1.0
    return {
        "share": share,
        "values": count,
        "p_value": p,
        "threshold": threshold,
        "flagged": judged and share >= threshold and p < alpha,
    }


def judge(profile: ReferenceProfile, window: Window, spec: MonitorSpec) -> dict[str, Any]:
    """The window's document: per feature, the score, quality, verdicts and the flat metrics."""
    judged = window.rows >= spec.drift.min_rows
    # Bonferroni over the window's family of tests (each feature and the score): alpha is the chance
    # that a window of an unchanged model flags anything at all, not each feature's
    alpha = spec.drift.alpha / (len(profile.features) + 1)
    features: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    drifted: list[str] = []
    for name, reference in profile.features.items():
        if name in window.numeric:
            current_n: NumericSummary = window.numeric[name]
            doc = numeric_drift(reference, current_n, spec, alpha)
            missing = current_n.missing
            out = window.out_of_range.get(name, 0)
            present = max(current_n.n, 1)
            doc["out_of_range"] = _share(out, present, spec.quality.out_of_range, alpha, judged)
            metrics[f"quality.{name}.out_of_range"] = doc["out_of_range"]["share"]
            probe = window.units.get(name)
            unit = probe.verdict(reference.numeric) if probe is not None and reference.numeric is not None else None
            doc["unit_change"] = unit
            if unit is not None and judged:
                metrics[f"quality.{name}.unit_change"] = unit["share"]
        else:
            current_c = window.categories[name]
            doc = categorical_drift(reference, current_c, spec, alpha)
            missing = current_c.missing
            new = _share(sum(doc["new_categories"].values()), current_c.n, spec.quality.new_category, alpha, judged)
            doc["new_category_share"], doc["new_category_flagged"] = new["share"], new["flagged"]
            metrics[f"quality.{name}.new_category"] = new["share"]
        doc["missing"] = _missing(reference, missing, window.rows, spec, judged, alpha)
        metrics[f"quality.{name}.missing_increase"] = doc["missing"]["increase"]
        for stat in doc["statistics"]:
            if not math.isnan(stat["value"]):
                metrics[f"drift.{name}.{stat['name']}"] = stat["value"]
        doc["drifted"] = judged and any(s.get("material") and s.get("significant") for s in doc["statistics"])
        if doc["drifted"]:
            drifted.append(name)
        features[name] = doc
    metrics["drift.features"] = float(len(drifted))
    prediction = _prediction(profile, window, spec, judged, alpha)
    metrics.update({f"prediction.{k}": v for k, v in prediction["metrics"].items()})
    # the verdicts as counts, for alert rules (all 0 in a window too small to judge)
    metrics["prediction.drifted"] = float(prediction["drifted"])
    metrics["quality.unit_changes"] = float(judged and sum(f.get("unit_change") is not None for f in features.values()))
    metrics["quality.flags"] = float(sum(_flags(f) for f in features.values()))
    return {
        "rows": window.rows,
        "judged": judged,
        "min_rows": spec.drift.min_rows,
        "alpha": alpha,  # each test's level: the spec's alpha shared by the window's features and score
        "features": features,
        "drifted": drifted,
        "prediction": prediction,
        "metrics": {k: v for k, v in sorted(metrics.items()) if not math.isnan(v)},
    }


def _prediction(
    profile: ReferenceProfile, window: Window, spec: MonitorSpec, judged: bool, alpha: float
) -> dict[str, Any]:
    """The score distribution's drift and the share of rows at or above the threshold."""
    assert window.score is not None and profile.score.numeric is not None
    doc = numeric_drift(profile.score, window.score, spec, alpha)
    share = window.above_threshold / window.rows if window.rows else float("nan")
    doc["above_threshold"] = {"reference": profile.above_threshold, "current": share, "threshold": profile.threshold}
    doc["drifted"] = judged and any(s.get("material") and s.get("significant") for s in doc["statistics"])
    doc["metrics"] = {s["name"]: s["value"] for s in doc["statistics"]}
    doc["metrics"]["above_threshold_change"] = share - profile.above_threshold if window.rows else float("nan")
    return doc


def _flags(feature: dict[str, Any]) -> int:
    """The quality findings flagged on one feature (missing, out of range, new categories)."""
    return (
        int(bool(feature["missing"]["flagged"]))
        + int(bool(feature.get("out_of_range", {}).get("flagged")))
        + int(bool(feature.get("new_category_flagged")))
    )
