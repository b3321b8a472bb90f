"""Reproduce: the same recipe gives the same model file; a changed dataset is named as the cause."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from medops.data.datasets import get
from medops.errors import InvalidInput
from medops.training import Tracker
from medops.training.reproduce import causes, reproduce
from medops.training.train import TrainConfig, train
from medops.training.trainers import ModelSpec
from medops.workspace import Workspace
from tests.factories import TRAIN_FEATURES as FEATURES
from tests.factories import put
from tests.factories import training_rows as data

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _train_on(tracker: Tracker, tmp_path: Path, seed_data: int) -> str:
    frame = data(900, seed=seed_data)
    put(tracker.ws, tmp_path, "cohort", pa.Table.from_pandas(frame, preserve_index=False))
    info = get(tracker.ws.db, "cohort")
    config = TrainConfig(
        FEATURES,
        "readmitted",
        ModelSpec("lightgbm", {"n_estimators": 30, "num_leaves": 7}),
        seed=3,
        inputs=(info.ref,),
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": False},
    )
    stored = tracker.ws.artifacts.local_path(info.version)
    import pyarrow.parquet as pq

    return train(tracker, pq.read_table(stored).to_pandas(), config, actor="alice").run_id


def test_a_run_reproduces_to_the_same_model(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    run_id = _train_on(tracker, tmp_path, seed_data=1)
    report = reproduce(tracker, run_id, actor="alice")
    assert report.same_model, report.causes
    assert report.reproduced, report.metric_changes
    assert report.causes == []
    assert tracker.get(report.result.run_id).tags["reproduces"] == run_id


def test_a_changed_dataset_is_named_as_the_difference(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    first = _train_on(tracker, tmp_path, seed_data=1)
    second = _train_on(tracker, tmp_path, seed_data=2)  # a new version of the same dataset
    found = causes(tracker.compare(first, second))
    assert found == ["data: dataset:cohort differ"]
    assert tracker.get(first).tags["model_sha256"] != tracker.get(second).tags["model_sha256"]


def test_runs_without_a_dataset_recipe_are_refused(team: Workspace) -> None:
    tracker = Tracker(team)
    result = train(
        tracker,
        data(600),
        TrainConfig(FEATURES, "readmitted", ModelSpec("logistic_regression")),
        actor="alice",
    )
    with pytest.raises(InvalidInput, match="trained on a frame, not a dataset version"):
        reproduce(tracker, result.run_id, actor="alice")
    with tracker.start_run("x", actor="alice") as bare:
        pass
    with pytest.raises(InvalidInput, match="stored no model"):
        reproduce(tracker, bare.id, actor="alice")
