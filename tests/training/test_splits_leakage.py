"""Splits keep patients and time apart; the three leakage checks stop training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medops.errors import InvalidInput
from medops.training.leakage import LeakageError, check_leakage, enforce
from medops.training.splits import make_split


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, 80, n)
    return pd.DataFrame(
        {
            "patient_id": [f"pat_{p:03d}" for p in patients],
            "label_time": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
            "age": rng.normal(65, 10, n),
            "site": rng.choice(["north", "south"], n),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_grouped_split_never_shares_a_patient(seed: int) -> None:
    data = frame(seed=seed)
    split = make_split(data, "grouped", label="y", group="patient_id", test_size=0.25, seed=seed)
    train, test = set(data["patient_id"].iloc[split.train]), set(data["patient_id"].iloc[split.test])
    assert not train & test and len(split.train) + len(split.test) == len(data)
    assert split.description["kind"] == "grouped" and split.description["seed"] == seed
    again = make_split(data, "grouped", label="y", group="patient_id", test_size=0.25, seed=seed)
    assert (again.test == split.test).all()  # the same seed, the same split


def test_the_temporal_split_tests_on_the_future_only() -> None:
    data = frame()
    split = make_split(data, "temporal", label="y", time="label_time", cutoff="2025-06-01")
    assert data["label_time"].iloc[split.train].max() < pd.Timestamp("2025-06-01", tz="UTC")
    assert data["label_time"].iloc[split.test].min() >= pd.Timestamp("2025-06-01", tz="UTC")
    grouped = make_split(data, "temporal", label="y", time="label_time", cutoff="2025-06-01", group="patient_id")
    assert not set(data["patient_id"].iloc[grouped.train]) & set(data["patient_id"].iloc[grouped.test])
    assert grouped.description["dropped_test_rows_of_seen_entities"] > 0


def test_the_stratified_split_keeps_the_label_share() -> None:
    data = frame(1000)
    split = make_split(data, "stratified", label="y", test_size=0.3, seed=1)
    d = split.description
    assert abs(d["train_label_mean"] - d["test_label_mean"]) < 0.01


def test_bad_split_requests() -> None:
    data = frame()
    with pytest.raises(InvalidInput, match="group column 'patient' is not in the data"):
        make_split(data, "grouped", label="y", group="patient")
    with pytest.raises(InvalidInput, match="test_size 1.5"):
        make_split(data, "grouped", label="y", group="patient_id", test_size=1.5)
    with pytest.raises(InvalidInput, match="left the test side empty"):
        make_split(data, "temporal", label="y", time="label_time", cutoff="2030-01-01")


def test_each_leakage_case_stops_training() -> None:
    data = frame()
    overlap = make_split(data, "stratified", label="y", seed=0)  # rows, not patients: patients on both sides
    found = check_leakage(data, overlap, label="y", features=["age"], group="patient_id")
    assert [f.check for f in found] == ["entity_overlap"]
    with pytest.raises(LeakageError, match="entity_overlap: .* patient_id values are in both train and test"):
        enforce(found)

    clean = make_split(data, "grouped", label="y", group="patient_id")
    late = data.assign(hba1c_time=data["label_time"] + pd.Timedelta(days=1))
    found = check_leakage(
        late,
        clean,
        label="y",
        features=["age"],
        group="patient_id",
        label_time="label_time",
        feature_times={"hba1c": "hba1c_time"},
    )
    assert [f.check for f in found] == ["future_feature"]
    assert "hba1c is dated after the label time in 400 rows" in found[0].detail

    leaky = data.assign(follow_up_days=np.where(data["y"] == 1, 5.0, 40.0) + np.arange(len(data)) * 1e-6)
    found = check_leakage(leaky, clean, label="y", features=["age", "site", "follow_up_days"], group="patient_id")
    assert [f.detail for f in found] == ["follow_up_days separates the training labels perfectly"]
    with pytest.raises(LeakageError):
        enforce(found)
    assert enforce(found, allow=["perfect_predictor"]) == found  # an explicit override passes, to be recorded
    with pytest.raises(InvalidInput, match="unknown leakage check"):
        enforce(found, allow=["everything"])


def test_a_clean_dataset_passes() -> None:
    data = frame()
    split = make_split(data, "grouped", label="y", group="patient_id")
    assert check_leakage(data, split, label="y", features=["age", "site"], group="patient_id") == []


def test_a_grouped_split_does_not_depend_on_the_pseudonym_key() -> None:
    """The same rows pseudonymized with two keys give the same split: pseudonyms are not an order."""
    import hashlib

    patients = np.repeat(np.arange(300), 3)
    frame = pd.DataFrame({"label": np.tile([0, 1, 1], 300), "x": np.arange(900)})

    def keyed(key: str) -> pd.DataFrame:
        ids = [hashlib.sha256(f"{key}{p}".encode()).hexdigest()[:16] for p in patients]
        return frame.assign(patient_id=ids)

    one = make_split(keyed("key-a"), "grouped", label="label", group="patient_id", seed=3)
    two = make_split(keyed("key-b"), "grouped", label="label", group="patient_id", seed=3)
    assert np.array_equal(one.test, two.test) and np.array_equal(one.train, two.train)
    other_seed = make_split(keyed("key-a"), "grouped", label="label", group="patient_id", seed=4)
    assert not np.array_equal(one.test, other_seed.test)


def test_a_period_split_tests_on_later_years_and_places_unknown_years_nowhere() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "c", "c", "d", "e", "f"],
            "year": ["2017", "2019", "2018", "2018", "2020", "90+", "2020", None],
            "y": [0, 1, 0, 1, 0, 1, 1, 0],
        }
    )
    split = make_split(frame, "period", label="y", time="year", cutoff=2019)
    assert sorted(split.train.tolist()) == [0, 2, 3] and sorted(split.test.tolist()) == [1, 4, 6]
    assert split.description["rows_without_time"] == 2 and split.description["cutoff"] == 2019
    assert split.description["timeline"].startswith("period")
    grouped = make_split(frame, "period", label="y", time="year", cutoff=2019, group="patient_id")
    assert sorted(grouped.test.tolist()) == [6]  # a and c were seen in training: their later rows leave
    assert grouped.description["dropped_test_rows_of_seen_entities"] == 2
    assert make_split(frame, "period", label="y", time="year").description["cutoff"] == 2020
    with pytest.raises(InvalidInput, match="holds numbers, not timestamps"):
        make_split(
            frame.assign(year=[2017, 2019, 2018, 2018, 2020, 2016, 2020, 2019]), "temporal", label="y", time="year"
        )
