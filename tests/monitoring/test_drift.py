"""Verdicts of a window against its reference profile: effect sizes judged, p-values beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medops.monitoring.drift import judge
from medops.monitoring.profile import ReferenceProfile, build
from medops.monitoring.spec import MonitorSpec
from medops.monitoring.window import Window
from medops.training.input_schema import InputSchema

FEATURES = ["age_years", "temperature", "payer", "glucose"]


def frame(
    rng: np.random.Generator, n: int, *, age_shift: float = 0.0, payers: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age_years": np.round(rng.normal(62 + age_shift, 14, n).clip(18, 100), 1),
            "temperature": np.round(rng.normal(37.1, 0.5, n), 1),
            "payer": rng.choice(["medicare", "commercial", "medicaid"], n, p=list(payers)),
            "glucose": np.round(rng.lognormal(np.log(6.0), 0.25, n), 1),  # mmol/L
        }
    )


def profile_of(reference: pd.DataFrame, rng: np.random.Generator) -> ReferenceProfile:
    schema = InputSchema.from_frame(reference, FEATURES)
    scores = rng.beta(2, 8, len(reference))
    evaluation = {"id": "e1", "metrics": {"auroc": {"value": 0.8, "low": 0.78, "high": 0.82}}, "subgroups": None}
    profile = build(reference, FEATURES, schema, scores, 0.3, evaluation)
    return ReferenceProfile.from_doc(profile.to_doc())  # as stored and read back


def window_of(profile: ReferenceProfile, current: pd.DataFrame, scores: np.ndarray, chunks: int = 1) -> Window:
    window = Window.start(profile)
    for part, p in zip(np.array_split(np.arange(len(current)), chunks), np.array_split(scores, chunks), strict=True):
        window.add({k: current[k].to_numpy()[part] for k in current.columns}, p, profile)
    return window


@pytest.fixture(scope="module")
def reference() -> tuple[ReferenceProfile, np.random.Generator]:
    rng = np.random.default_rng(11)
    return profile_of(frame(rng, 20_000), rng), rng


def test_no_drift_on_the_same_population(reference: tuple[ReferenceProfile, np.random.Generator]) -> None:
    profile, rng = reference
    current = frame(rng, 5_000)
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 5_000)), MonitorSpec())
    assert doc["judged"] and doc["drifted"] == []
    assert not doc["prediction"]["drifted"]
    assert all(f.get("unit_change") is None for f in doc["features"].values())


def test_a_negligible_shift_in_a_large_window_is_significant_but_not_drift(
    reference: tuple[ReferenceProfile, np.random.Generator],
) -> None:
    profile, rng = reference
    current = frame(rng, 200_000, age_shift=0.7)  # 0.05 SD: a p-value near zero, an effect nobody would act on
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 200_000), chunks=8), MonitorSpec())
    ks = next(s for s in doc["features"]["age_years"]["statistics"] if s["name"] == "ks")
    assert ks["significant"] and not ks["material"]
    assert "age_years" not in doc["drifted"]


def test_a_large_shift_in_a_tiny_window_is_not_judged(reference: tuple[ReferenceProfile, np.random.Generator]) -> None:
    profile, rng = reference
    current = frame(rng, 40, age_shift=15)
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 40)), MonitorSpec())
    assert not doc["judged"] and doc["drifted"] == []
    assert doc["metrics"]["drift.age_years.psi"] > 0.2  # reported all the same


def test_aging_and_a_payer_shift_are_drift(reference: tuple[ReferenceProfile, np.random.Generator]) -> None:
    profile, rng = reference
    current = frame(rng, 5_000, age_shift=8, payers=(0.2, 0.3, 0.5))
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 5_000)), MonitorSpec())
    assert doc["drifted"] == ["age_years", "payer"]
    payer = doc["features"]["payer"]
    assert {s["name"] for s in payer["statistics"] if s.get("material")} == {"cramers_v", "jensen_shannon"}


def test_verdicts_do_not_depend_on_row_order_or_chunking(
    reference: tuple[ReferenceProfile, np.random.Generator],
) -> None:
    profile, rng = reference
    current = frame(rng, 6_000, age_shift=5)
    scores = rng.beta(2, 7, 6_000)
    one = judge(profile, window_of(profile, current, scores), MonitorSpec())
    order = rng.permutation(6_000)
    shuffled = current.iloc[order].reset_index(drop=True)
    other = judge(profile, window_of(profile, shuffled, scores[order], chunks=13), MonitorSpec())
    assert one["drifted"] == other["drifted"]
    assert one["metrics"].keys() == other["metrics"].keys()
    for key, value in one["metrics"].items():
        assert other["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_fahrenheit_at_one_site_is_named(reference: tuple[ReferenceProfile, np.random.Generator]) -> None:
    profile, rng = reference
    current = frame(rng, 4_000)
    south = rng.random(4_000) < 0.3
    current.loc[south, "temperature"] = np.round(current.loc[south, "temperature"] * 9 / 5 + 32, 1)
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 4_000)), MonitorSpec())
    unit = doc["features"]["temperature"]["unit_change"]
    assert unit is not None and unit["suspected_unit"] == "degF (reference in degC)"
    # a suspect converts back into the reference's 1-99 % range: the tails are not counted
    assert 0.95 * south.mean() <= unit["share"] <= south.mean()
    assert doc["features"]["glucose"]["unit_change"] is None


def test_glucose_in_mg_dl_is_named(reference: tuple[ReferenceProfile, np.random.Generator]) -> None:
    profile, rng = reference
    current = frame(rng, 3_000)
    current["glucose"] = np.round(current["glucose"] * 18.016)
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 3_000)), MonitorSpec())
    assert (
        doc["features"]["glucose"]["unit_change"]["suspected_unit"] == "mg/dL (glucose) (reference in mmol/L (glucose))"
    )
    assert "glucose" in doc["drifted"]


def test_missing_values_and_new_categories_are_quality_findings(
    reference: tuple[ReferenceProfile, np.random.Generator],
) -> None:
    profile, rng = reference
    current = frame(rng, 3_000)
    current.loc[rng.random(3_000) < 0.2, "glucose"] = np.nan
    current.loc[:99, "payer"] = "self_pay"
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 3_000)), MonitorSpec())
    assert doc["features"]["glucose"]["missing"]["flagged"]
    assert doc["features"]["payer"]["new_categories"] == {"self_pay": 100}
    assert doc["features"]["payer"]["new_category_flagged"]
    assert doc["metrics"]["quality.glucose.missing_increase"] == pytest.approx(0.2, abs=0.03)


def test_a_feature_absent_from_the_window_is_all_missing(
    reference: tuple[ReferenceProfile, np.random.Generator],
) -> None:
    profile, rng = reference
    current = frame(rng, 1_000).drop(columns=["payer"])
    doc = judge(profile, window_of(profile, current, rng.beta(2, 8, 1_000)), MonitorSpec())
    assert doc["features"]["payer"]["missing"]["current"] == 1.0
