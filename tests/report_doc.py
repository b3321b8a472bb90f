"""A realistic evaluation document for the validation report and the model card.

It is built here, independent of the code that produces it, with every case the rendering
must handle: a failing gate, a too-small subgroup, a flagged gap, undefined values, a
perturbation the input checks miss, with and without a production model, and user text
that tries to inject HTML. The report tests and the report benchmark render it.
"""

from __future__ import annotations

from typing import Any

NAN = float("nan")
INJECTION = "Flag adults at risk of readmission <script>alert('x')</script> & review"


def m(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high}


def group(
    attribute: str,
    name: str,
    n: int,
    positives: int,
    *,
    auroc: float = 0.80,
    sensitivity: float = 0.80,
    eo: float = 0.0,
    flagged: list[str] | None = None,
    min_size: int = 50,
) -> dict[str, Any]:
    """A subgroup row as the producer writes it; a group under min_size has no metrics or gaps."""
    if n < min_size:
        return {
            "attribute": attribute,
            "group": name,
            "n": n,
            "positives": positives,
            "too_small": True,
            "metrics": {},
            "gaps": {},
            "flagged": [],
        }
    prevalence = positives / n
    return {
        "attribute": attribute,
        "group": name,
        "n": n,
        "positives": positives,
        "too_small": False,
        "metrics": {
            "auroc": m(auroc, auroc - 0.03, auroc + 0.03),
            "sensitivity": m(sensitivity, sensitivity - 0.05, sensitivity + 0.05),
            "specificity": m(0.66, 0.63, 0.69),
            "ppv": m(0.24, 0.20, 0.28) if positives else m(NAN, NAN, NAN),
            "ece": m(0.031, 0.018, 0.047),
            "prevalence": m(prevalence, prevalence - 0.01, prevalence + 0.01),
        },
        "gaps": {
            "equal_opportunity": m(eo, eo - 0.05, eo + 0.05),
            "equalized_odds": m(abs(eo) + 0.01, 0.0, abs(eo) + 0.06),
            "demographic_parity": m(0.012, -0.02, 0.04),
            "calibration": m(0.031, 0.018, 0.047),
        },
        "flagged": list(flagged or []),
    }


def make_doc(*, champion: bool = True, extra_groups: int = 0) -> dict[str, Any]:
    """A 30-day readmission model that misses one gate: a subgroup gap for patients 65 and over."""
    roc = [[0.0, 0.0]] + [[i / 50, min(1.0, (i / 50) ** 0.45)] for i in range(1, 50)] + [[1.0, 1.0]]
    pr = [[i / 50, max(0.13, 0.9 - 0.77 * (i / 50) ** 1.5)] for i in range(0, 51)]
    calibration = [
        {
            "bin": f"{k / 10:.1f}–{(k + 1) / 10:.1f}",
            "mean_predicted": k / 10 + 0.05,
            "observed": k / 10 + 0.05 - 0.02 * k / 9,
            "count": int(4200 / (k + 1) ** 1.6),
        }
        for k in range(10)
    ]
    calibration[9] = {"bin": "0.9–1.0", "mean_predicted": NAN, "observed": NAN, "count": 0}
    thresholds = [i / 20 for i in range(1, 20)]
    table = [
        {
            "threshold": t,
            "sensitivity": 1 - t**1.3,
            "specificity": t**0.7,
            "ppv": NAN if t > 0.9 else 0.13 + 0.5 * t,
            "npv": 0.95 - 0.05 * t,
            "f1": 0.3,
            "selection_rate": 1 - t,
            "chosen": t == 0.2,
        }
        for t in thresholds
    ]
    groups = [
        group("sex", "F", 2480, 310),
        group("sex", "M", 2310, 322, sensitivity=0.82),
        group("sex", "unknown", 12, 2),
        group("age_band", "18–44", 1210, 98, sensitivity=0.86, eo=0.06),
        group("age_band", "45–64", 1790, 230),
        group("age_band", "65+", 1760, 304, sensitivity=0.65, eo=-0.152, flagged=["equal_opportunity"]),
        group("age_band", "<18", 42, 0),
        group("sex × age_band", "F × 65+", 910, 151, sensitivity=0.63, eo=-0.17, flagged=["equal_opportunity"]),
        group("sex × age_band", "M × 18–44", 600, 0, sensitivity=NAN),
    ]
    groups[-1]["metrics"]["auroc"] = m(NAN, NAN, NAN)
    groups[-1]["gaps"]["equal_opportunity"] = m(NAN, NAN, NAN)
    for i in range(extra_groups):
        groups.append(group("site", f"site-{i:02d}", 400 + i, 50, flagged=["calibration"] if i % 7 == 0 else []))
    gates = [
        {
            "criterion": "auroc ≥ 0.7 on the CI lower bound",
            "kind": "metric",
            "value": 0.791,
            "threshold": 0.7,
            "passed": True,
            "why": "auroc on the CI lower bound is 0.791, meets ≥ 0.7",
        },
        {
            "criterion": "calibration_slope in [0.8, 1.2]",
            "kind": "calibration",
            "value": 0.94,
            "threshold": "(0.8, 1.2)",
            "passed": True,
            "why": "calibration_slope 0.940 is within [0.8, 1.2]",
        },
        {
            "criterion": "equal_opportunity gap ≤ 0.1 over age_band",
            "kind": "subgroup",
            "value": 0.152,
            "threshold": 0.1,
            "passed": False,
            "why": "1 group(s) beyond 0.1: age_band=65+; largest age_band=65+ at 0.152",
        },
        {
            "criterion": "data contracts passed",
            "kind": "prerequisite",
            "value": None,
            "threshold": None,
            "passed": True,
            "why": "all 3 contracts passed",
        },
    ]
    if champion:
        gates.append(
            {
                "criterion": "auroc not worse than the production model by more than 0.02",
                "kind": "non_inferiority",
                "value": 0.011,
                "threshold": 0.02,
                "passed": True,
                "why": "difference +0.011 (CI -0.004 to +0.026) against run 5e1f0c2b9a7d; within the margin of 0.02",
            }
        )
    return {
        "id": "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
        "created_at": "2025-03-14T09:12:44+00:00",
        "created_by": "alice",
        "passed": False,
        "project": {
            "name": "readmission-30d",
            "description": "30-day unplanned readmission risk at discharge, internal medicine wards.",
            "intended_use": INJECTION,
            "population": "Adults (18+) discharged alive from internal medicine wards of the network's hospitals.",
            "owner": "Clinical AI team <clinical-ai@example.org>",
            "sha256": "a" * 64,
        },
        "run": {
            "id": "0f9e8d7c6b5a49382716051423324150",
            "experiment": "readmission",
            "name": "lgbm-baseline",
            "estimator": "lightgbm",
            "params": {"learning_rate": "0.05", "num_leaves": "31", "n_estimators": "400"},
            "created_by": "bob",
            "started_at": "2025-03-13T16:02:11+00:00",
            "ended_at": "2025-03-13T16:09:57+00:00",
            "git_commit": "3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c",
            "git_dirty": True,
            "model_sha256": "b" * 64,
            "seed": 42,
            "host": "train-01",
            "environment": {
                "digest": "sha256:" + "c" * 64,
                "packages": {
                    "lightgbm": "4.6.0",
                    "scikit-learn": "1.8.0",
                    "numpy": "2.1.3",
                    "pandas": "2.2.3",
                    "medops": "0.1.0",
                },
            },
        },
        "data": {
            "training_set": "readmission-train@3",
            "label": "readmitted_30d",
            "features": ["age", "sex", "los_days", "n_prior_admissions_1y", "temperature_max_30d", "creatinine_last"],
            "test_rows": 4790,
            "test_positives": 632,
            "train_rows": 19160,
            "split": {"kind": "temporal", "column": "discharge_date", "test_from": "2024-07-01"},
            "feature_views": {"admissions_history": "2", "labs_recent": "5"},
            "lineage": [
                {"from": "source:ehr_encounters@12", "to": "view:admissions_history@2", "relation": "materialized"},
                {"from": "view:labs_recent@5", "to": "training_set:readmission-train@3", "relation": "joined"},
            ],
        },
        "threshold": {"value": 0.2, "rule": "target sensitivity 0.80", "chosen_on": "test set"},
        "bootstrap": {
            "resamples": 2000,
            "level": 0.95,
            "seed": 7,
            "method": "stratified by label; binned, shifted to the exact estimate",
        },
        "metrics": {
            "auroc": m(0.812, 0.791, 0.833),
            "auprc": m(0.441, 0.405, 0.478),
            "sensitivity": m(0.801, 0.770, 0.832),
            "specificity": m(0.662, 0.648, 0.676),
            "ppv": m(0.265, 0.249, 0.282),
            "npv": m(0.957, 0.951, 0.963),
            "f1": m(0.398, 0.378, 0.418),
            "brier": m(0.094, 0.090, 0.098),
            "calibration_slope": m(0.94, 0.87, 1.01),
            "calibration_intercept": m(0.05, NAN, NAN),
            "ece": m(0.021, 0.015, 0.029),
            "prevalence": m(0.132, 0.132, 0.132),
            "selection_rate": m(0.398, 0.385, 0.411),
            "fpr": m(0.338, 0.324, 0.352),
        },
        "curves": {"roc": roc, "pr": pr, "calibration": calibration},
        "threshold_table": table,
        "subgroups": {
            "min_size": 50,
            "attributes": {
                "sex": {"column": "sex", "source": None, "bins": None},
                "age_band": {"column": "age", "source": "patients", "bins": [18, 45, 65]},
            },
            "groups": groups,
        },
        "robustness": [
            {
                "name": "noise",
                "description": "Gaussian noise of 0.1 SD on numeric features",
                "rows_changed": 4790,
                "auroc": 0.806,
                "auroc_change": -0.006,
                "brier": 0.095,
                "brier_change": 0.001,
                "flagged_rate": 0.02,
                "caught": True,
            },
            {
                "name": "out_of_range",
                "description": "5% of rows given a value just outside the training range",
                "rows_changed": 240,
                "auroc": 0.799,
                "auroc_change": -0.013,
                "brier": 0.097,
                "brier_change": 0.003,
                "flagged_rate": 1.0,
                "caught": True,
            },
            {
                "name": "unit:temperature_max_30d",
                "description": "temperature_max_30d recorded in °F instead of °C",
                "rows_changed": 4650,
                "auroc": 0.731,
                "auroc_change": -0.081,
                "brier": 0.118,
                "brier_change": 0.024,
                "flagged_rate": 0.12,
                "caught": False,
            },
            {
                "name": "missing",
                "description": "10% of values set missing",
                "rows_changed": 0,
                "auroc": NAN,
                "auroc_change": NAN,
                "brier": None,
                "brier_change": None,
                "flagged_rate": NAN,
                "caught": False,
            },
        ],
        "input_checks": {
            "numeric": {"age": [18, 104], "temperature_max_30d": [34.1, 41.9], "los_days": [0, 180]},
            "categorical": {"sex": ["F", "M", "unknown"]},
            "required": ["age", "sex"],
        },
        "champion": (
            {
                "run": "5e1f0c2b9a7d4e6f8a0b1c2d3e4f5a6b",
                "metric": "auroc",
                "challenger": 0.812,
                "champion": 0.801,
                "difference": 0.011,
                "low": -0.004,
                "high": 0.026,
                "margin": 0.02,
            }
            if champion
            else None
        ),
        "gates": gates,
        "card": {
            "limitations": ["Trained on one hospital network; transfer to other sites is untested."],
            "ethical_considerations": [
                "Used to prioritise follow-up calls, never to deny care.",
                "Sex is recorded administratively and may not reflect gender identity.",
            ],
        },
    }
