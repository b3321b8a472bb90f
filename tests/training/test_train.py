"""Training end to end: reproducible model files, leakage stops, and bad input before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medops.errors import InvalidInput
from medops.training import Tracker
from medops.training.leakage import LeakageError
from medops.training.train import TrainConfig, train
from medops.training.trainers import ModelSpec
from medops.workspace import Workspace
from tests.factories import TRAIN_FEATURES as FEATURES
from tests.factories import training_rows as data


@pytest.fixture
def tracker(team: Workspace) -> Tracker:
    return Tracker(team)


def _runs(tracker: Tracker) -> int:
    return len(tracker.list_runs(limit=1000))


@pytest.mark.parametrize("estimator", ["logistic_regression", "lightgbm"])
def test_same_data_settings_and_seed_give_the_same_model_file(tracker: Tracker, estimator: str) -> None:
    config = TrainConfig(FEATURES, "readmitted", ModelSpec(estimator), seed=11, experiment="readmission")
    first = train(tracker, data(), config, actor="alice")
    second = train(tracker, data(), config, actor="alice")
    assert first.model_sha256 == second.model_sha256
    assert first.metrics == second.metrics and first.metrics["test_auroc"] > 0.6
    info = tracker.get(first.run_id)
    assert info.state == "finished" and info.tags["model_sha256"] == first.model_sha256
    assert info.params["split.kind"] == "grouped" and info.params["estimator"] == estimator
    assert tracker.ws.artifacts.read_bytes(first.model_sha256)  # stored, verified by its hash on read
    other = train(
        tracker,
        data(),
        TrainConfig(FEATURES, "readmitted", ModelSpec(estimator), seed=12),
        actor="alice",
    )
    assert other.model_sha256 != first.model_sha256


def test_leakage_stops_the_run_and_an_override_is_recorded(tracker: Tracker) -> None:
    frame = data()
    frame["discharge_disposition_code"] = frame["readmitted"] * 10 + 1.0  # the label in disguise
    features = [*FEATURES, "discharge_disposition_code"]
    config = TrainConfig(features, "readmitted", ModelSpec("logistic_regression"))
    with pytest.raises(LeakageError, match="perfect_predictor: discharge_disposition_code"):
        train(tracker, frame, config, actor="alice")
    assert _runs(tracker) == 0  # nothing started
    rows = TrainConfig(FEATURES, "readmitted", ModelSpec("logistic_regression"), split="stratified")
    with pytest.raises(LeakageError, match="entity_overlap"):
        train(tracker, data(), rows, actor="alice")
    dated = data().assign(
        label_time=pd.Timestamp("2025-01-01", tz="UTC"), los_recorded_at=pd.Timestamp("2025-01-03", tz="UTC")
    )
    future = TrainConfig(
        FEATURES,
        "readmitted",
        ModelSpec("logistic_regression"),
        label_time="label_time",
        feature_times={"los": "los_recorded_at"},
    )
    with pytest.raises(LeakageError, match="future_feature: los is dated after the label time"):
        train(tracker, dated, future, actor="alice")
    allowed = TrainConfig(
        features, "readmitted", ModelSpec("logistic_regression"), allow_leakage=("perfect_predictor",)
    )
    result = train(tracker, frame, allowed, actor="alice")
    assert tracker.get(result.run_id).tags["leakage_override"] == "perfect_predictor"
    from medops.audit import AuditFilter, list_events

    events = list_events(tracker.ws.db, AuditFilter(action="run.leakage_override"), limit=None)
    assert [e.entity_id for e in events] == [result.run_id]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": ModelSpec("xgboost")}, "estimator 'xgboost' is not known"),
        ({"model": ModelSpec("lightgbm", {"learning_rat": 0.1})}, "lightgbm has no parameter 'learning_rat'"),
        ({"label": "outcome"}, "column 'outcome' is not in the training data"),
        ({"features": ["age", "bmi"]}, "column 'bmi' is not in the training data"),
    ],
)
def test_bad_settings_fail_before_any_work(tracker: Tracker, change: dict[str, object], message: str) -> None:
    base = {"features": FEATURES, "label": "readmitted", "model": ModelSpec("lightgbm")}
    with pytest.raises(InvalidInput, match=message):
        train(tracker, data(), TrainConfig(**{**base, **change}), actor="alice")  # type: ignore[arg-type]
    assert _runs(tracker) == 0


def test_bad_labels_fail_before_any_work(tracker: Tracker) -> None:
    config = TrainConfig(FEATURES, "readmitted", ModelSpec("lightgbm"))
    with pytest.raises(InvalidInput, match="has one class only"):
        train(tracker, data().assign(readmitted=0), config, actor="alice")
    with pytest.raises(InvalidInput, match="label 'readmitted' is missing in 1 rows"):
        frame = data()
        frame.loc[3, "readmitted"] = np.nan
        train(tracker, frame, config, actor="alice")
    assert _runs(tracker) == 0


@pytest.mark.parametrize("how", ["over", "under"])
def test_resampling_balances_the_classes_reproducibly(how: str) -> None:
    from medops.training.trainers import resample

    frame = data()
    out = resample(frame, "readmitted", how, seed=3)  # type: ignore[arg-type]
    counts = out["readmitted"].value_counts()
    assert counts.nunique() == 1
    expected = frame["readmitted"].value_counts().max() if how == "over" else frame["readmitted"].value_counts().min()
    assert counts.iloc[0] == expected
    assert out.equals(resample(frame, "readmitted", how, seed=3))  # type: ignore[arg-type]


def test_calibrated_and_resampled_models_train(tracker: Tracker) -> None:
    spec = ModelSpec("lightgbm", {"n_estimators": 30}, class_weight=None, calibration="isotonic", resample="under")
    result = train(tracker, data(), TrainConfig(FEATURES, "readmitted", spec), actor="alice")
    info = tracker.get(result.run_id)
    assert info.params["calibration"] == "isotonic" and info.params["resample"] == "under"
    assert 0.0 <= result.metrics["test_brier"] <= 1.0
