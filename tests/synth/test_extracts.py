"""Extracts of one generated world: what was on record on a day, two days agreeing on their past."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from medops.errors import InvalidInput
from medops.synth import generate
from medops.synth.extracts import on_record
from tests.factories import run

FIRST, LATER = date(2025, 7, 1), date(2026, 1, 1)


@pytest.fixture(scope="module")
def world() -> object:
    return generate(600, seed=5, scenario="missingness_spike", days=400, drift_at=date(2025, 10, 1))


def test_each_table_holds_what_was_on_record_that_day(world: object) -> None:
    cut = pd.Timestamp(FIRST)
    extract = on_record(world, FIRST)  # type: ignore[arg-type]
    assert (pd.to_datetime(extract.encounters["discharge_time"]) < cut).all()
    assert len(extract.encounters) < len(world.encounters)  # type: ignore[attr-defined]
    assert set(extract.patients["patient_id"]) == set(extract.encounters["patient_id"])  # a patient once seen
    assert set(extract.observations["encounter_id"]) <= set(extract.encounters["encounter_id"])
    assert (pd.to_datetime(extract.notes["written_at"]) < cut).all()
    labels = extract.outcomes["readmission_30d"]
    known = pd.to_datetime(labels["label_available_at"]) < cut
    assert labels.loc[~known, "readmitted_30d"].isna().all()  # not known yet: no value
    assert labels.loc[known, "readmitted_30d"].notna().all()
    assert len(labels) == len(extract.encounters)


def test_two_extracts_agree_on_their_common_past(world: object) -> None:
    first, later = on_record(world, FIRST), on_record(world, LATER)  # type: ignore[arg-type]
    for name in ("encounters", "observations", "medications", "notes"):
        a, b = getattr(first, name), getattr(later, name)
        assert len(b) > len(a)
        merged = a.merge(b, how="left", indicator=True, on=list(a.columns))
        assert (merged["_merge"] == "both").all(), name  # every earlier row, unchanged, is in the later one
    a = first.outcomes["readmission_30d"].set_index("encounter_id")["readmitted_30d"]
    b = later.outcomes["readmission_30d"].set_index("encounter_id")["readmitted_30d"].reindex(a.index)
    assert (a.dropna() == b[a.notna()]).all()  # an outcome once known stays what it was
    assert b[a.isna()].notna().sum() > 0  # and outcomes unknown then have come in


def test_the_drift_begins_on_its_day() -> None:
    data = generate(800, seed=2, scenario="missingness_spike", days=300, drift_at=date(2025, 4, 1))
    obs = data.observations[data.observations["code"].isin(["hba1c", "creatinine"])]
    north = obs[obs["site"] == "north"]
    after = pd.to_datetime(north["observed_at"]) >= pd.Timestamp("2025-04-01")
    assert north.loc[~after, "value"].isna().mean() == 0
    assert north.loc[after, "value"].isna().mean() == pytest.approx(0.4, abs=0.06)
    with pytest.raises(InvalidInput, match="outside the period"):
        generate(50, days=100, drift_at=date(2026, 1, 1))


def test_the_cli_writes_an_extract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["synth", str(tmp_path / "jan"), "-n", "200", "--days", "400", "--on-record",
                          "2025-07-01", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    code, out, _ = run(["synth", str(tmp_path / "all"), "-n", "200", "--days", "400", "--json"], capsys)
    assert rows["encounters"] < json.loads(out)["rows"]["encounters"]
    code, _, err = run(["synth", str(tmp_path / "x"), "--on-record", "2024-12-31"], capsys)
    assert code != 0 and "is not after --start" in err
