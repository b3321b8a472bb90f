"""The synthetic data: deterministic, internally consistent, with signal and the promised drift."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medops.errors import Conflict, InvalidInput
from medops.synth import SCENARIOS, generate, write

START, DAYS = date(2025, 1, 1), 365
DRIFT = pd.Timestamp(START) + pd.Timedelta(days=DAYS // 2)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "fhir"])
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    write(generate(300, seed=11, scenario="unit_change"), tmp_path / "a", fmt)
    write(generate(300, seed=11, scenario="unit_change"), tmp_path / "b", fmt)
    write(generate(300, seed=12, scenario="unit_change"), tmp_path / "c", fmt)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_tables_are_internally_consistent() -> None:
    d = generate(2000, seed=5)
    enc, pts = d.encounters, d.patients
    assert pts["patient_id"].is_unique and enc["encounter_id"].is_unique
    assert set(enc["patient_id"]) <= set(pts["patient_id"])
    assert set(d.observations["encounter_id"]) <= set(enc["encounter_id"])
    assert (enc["discharge_time"] >= enc["admit_time"]).all()
    assert set(enc["attending_hcp_id"]) <= set(d.hcps["hcp_id"])
    # the label is what a hospital would compute from the encounters themselves
    nxt = enc.groupby("patient_id")["admit_time"].shift(-1)
    recomputed = ((nxt - enc["discharge_time"]).dt.total_seconds() <= 30 * 86400).astype(int)
    labels = d.outcomes["readmission_30d"]
    known = labels["readmitted_30d"].notna().to_numpy()
    assert known.mean() > 0.8  # only the last month's outcomes are still unknown
    assert (labels["readmitted_30d"].to_numpy()[known].astype(int) == recomputed.to_numpy()[known]).all()
    assert 0.05 < labels["readmitted_30d"].mean() < 0.4
    adherence = d.outcomes["nonadherence_90d"]  # the label follows the PDC as written, rounding included
    assert (adherence["nonadherent_90d"] == (adherence["pdc_90d"] < 0.8)).all()
    assert pts["ssn"].str.match(r"^(?!666)\d{3}-\d{2}-\d{4}$").all()
    assert pts["zip"].str.len().eq(5).all() and (pts["zip"] == "03601").any()  # leading zeros kept
    note, patient = d.notes.iloc[0], pts.set_index("patient_id").loc[d.notes.iloc[0]["patient_id"]]
    for phi in (patient["first_name"], patient["last_name"], patient["mrn"], patient["phone"]):
        assert phi in note["text"]


def test_outcomes_follow_the_documented_causes() -> None:
    d = generate(20_000, seed=2)
    enc = d.encounters.merge(d.patients[["patient_id", "birth_date", "payer"]], on="patient_id")
    age = (enc["admit_time"] - pd.to_datetime(enc["birth_date"])).dt.days / 365.25
    label = d.outcomes["readmission_30d"].set_index("encounter_id").loc[enc["encounter_id"], "readmitted_30d"]
    label = label.astype(float).to_numpy()
    assert np.nanmean(label[age.to_numpy() > 80]) > np.nanmean(label[age.to_numpy() < 50]) + 0.05
    adherence = d.outcomes["nonadherence_90d"].merge(d.patients[["patient_id", "payer"]], on="patient_id")
    by_payer = adherence.groupby("payer")["nonadherent_90d"].mean()
    assert by_payer["self_pay"] > by_payer["commercial"] + 0.1
    churn = d.outcomes["hcp_churn"].merge(d.hcps, on="hcp_id")
    assert (
        churn.groupby("competitor_trial_site")["churned"].mean()[True]
        > churn.groupby("competitor_trial_site")["churned"].mean()[False]
    )


def test_hcps_and_their_monthly_reports() -> None:
    assert len(generate(400, seed=3).hcps) == 10  # by default one per 200 patients, at least 10
    d = generate(400, seed=3, hcps=120)
    assert len(d.hcps) == 120 and d.patients["pcp_id"].isin(d.hcps["hcp_id"]).all()
    activity, churn = d.hcp_activity, d.outcomes["hcp_churn"].set_index("hcp_id")
    assert (activity["reported_at"] > activity["month"]).all()  # a month is reported once it is over
    # the churn label is predicted when the first month is reported, and known when the last one is
    assert (churn["index_date"] == activity.groupby("hcp_id")["reported_at"].min()).all()
    assert (churn["label_available_at"] == activity["reported_at"].max()).all()
    with pytest.raises(InvalidInput, match="HCPs"):
        generate(10, hcps=0)


def test_unit_change_switches_one_site_to_fahrenheit_after_the_drift_point() -> None:
    base = generate(3000, seed=4).observations
    drifted = generate(3000, seed=4, scenario="unit_change").observations
    assert set(base.loc[base["code"] == "temperature", "unit"]) == {"C"}
    temp = drifted[drifted["code"] == "temperature"]
    fahrenheit = temp[temp["unit"] == "F"]
    assert set(fahrenheit["site"]) == {"south"} and (fahrenheit["observed_at"] >= DRIFT).all()
    slipped = fahrenheit["value"].between(930, 1080)  # the lost-decimal entry errors, kept in F too
    assert (fahrenheit["value"].between(93, 108) | slipped).all() and slipped.mean() < 0.01
    celsius = temp.loc[temp["unit"] == "C", "value"]
    assert (celsius.between(34, 42) | celsius.between(340, 420)).all()


def test_aging_missingness_and_label_delay() -> None:
    base, aging = generate(4000, seed=8), generate(4000, seed=8, scenario="aging")

    def age_at_admission(d, after: bool) -> float:  # type: ignore[no-untyped-def]
        e = d.encounters.merge(d.patients[["patient_id", "birth_date"]], on="patient_id")
        e = e[(e["admit_time"] >= DRIFT) == after]
        return float(((e["admit_time"] - pd.to_datetime(e["birth_date"])).dt.days / 365.25).mean())

    assert age_at_admission(aging, False) == pytest.approx(age_at_admission(base, False), abs=1.5)
    assert age_at_admission(aging, True) > age_at_admission(base, True) + 4  # visible covariate shift
    base_r = base.outcomes["readmission_30d"]["readmitted_30d"].astype(float).mean()
    aging_r = aging.outcomes["readmission_30d"]["readmitted_30d"].astype(float).mean()
    assert aging_r > base_r  # risk follows age

    obs = generate(4000, seed=8, scenario="missingness_spike").observations
    labs = obs[obs["method"] == "lab"]
    after_north = labs[(labs["observed_at"] >= DRIFT) & (labs["site"] == "north")]
    before = labs[labs["observed_at"] < DRIFT]
    assert after_north["value"].isna().mean() == pytest.approx(0.4, abs=0.05)
    assert before["value"].isna().mean() == 0

    delayed = generate(4000, seed=8, scenario="label_delay").outcomes["readmission_30d"]
    end = pd.Timestamp(START) + pd.Timedelta(days=DAYS)
    assert delayed["readmitted_30d"].isna().sum() > base.outcomes["readmission_30d"]["readmitted_30d"].isna().sum()
    assert delayed.loc[delayed["readmitted_30d"].isna(), "label_available_at"].gt(end).all()


def test_new_treatment_lowers_readmissions_after_the_drift_point() -> None:
    def rate(scenario: str) -> tuple[float, float]:
        d = generate(20_000, seed=9, scenario=scenario)
        lab = d.outcomes["readmission_30d"]
        after = lab["label_time"] >= DRIFT
        return float(lab.loc[~after, "readmitted_30d"].astype(float).mean()), float(
            lab.loc[after, "readmitted_30d"].astype(float).mean()
        )

    base_before, base_after = rate("baseline")
    new_before, new_after = rate("new_treatment")
    assert new_before == pytest.approx(base_before, abs=0.005)
    assert new_after < base_after - 0.01


def test_fhir_resources(tmp_path: Path) -> None:
    files = write(generate(50, seed=1), tmp_path / "fhir", "fhir")
    assert [f.name for f in files] == [
        "Encounter.ndjson",
        "MedicationRequest.ndjson",
        "Observation.ndjson",
        "Patient.ndjson",
    ]
    for path in files:
        for line in path.read_text().splitlines():
            resource = json.loads(line)
            assert resource["resourceType"] == path.stem and resource["id"]
    temp = [json.loads(x) for x in (tmp_path / "fhir" / "Observation.ndjson").read_text().splitlines()]
    assert {r["valueQuantity"]["code"] for r in temp if r["code"]["coding"][0]["code"] == "8310-5"} == {"Cel"}


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown scenario"):
        generate(10, scenario="drifty")
    with pytest.raises(InvalidInput):
        generate(0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(Conflict):
        write(generate(10), tmp_path / "full", "csv")
    with pytest.raises(InvalidInput):
        write(generate(10), tmp_path / "new", "xlsx")
    assert not (tmp_path / "new").exists()
    assert set(SCENARIOS) >= {"baseline", "unit_change"}
    assert np.__name__  # numpy is a runtime dependency of the generator
