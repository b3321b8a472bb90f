"""Tuning: trials as nested runs, the best refit and tested once, bad search spaces refused."""

from __future__ import annotations

import json

import pytest

from medops.errors import InvalidInput
from medops.training import Tracker
from medops.training.train import TrainConfig
from medops.training.trainers import ModelSpec
from medops.training.tuning import parse_space, tune
from medops.workspace import Workspace
from tests.factories import TRAIN_FEATURES as FEATURES
from tests.factories import training_rows as data

SPACE = {"num_leaves": {"int": [4, 32]}, "learning_rate": {"float": [0.02, 0.3], "log": True}}


@pytest.mark.slow
def test_trials_are_nested_runs_and_the_best_is_recorded(team: Workspace) -> None:
    tracker = Tracker(team)
    config = TrainConfig(
        FEATURES,
        "readmitted",
        ModelSpec("lightgbm", {"n_estimators": 40}),
        seed=5,
        feature_views={"vitals": "ab" * 32},
    )
    result = tune(tracker, data(1200), config, SPACE, trials=8, actor="alice")
    assert {"kind": "featureview", "name": "vitals", "version": "ab" * 32} in tracker.get(result.run_id).inputs
    assert "budget.time_cap_hit" not in tracker.get(result.run_id).tags  # the trials, not the clock, ended it
    trials = tracker.list_runs(parent=result.run_id, limit=100)
    assert len(trials) == result.trials == 8 and all(t.state == "finished" for t in trials)
    parent = tracker.get(result.run_id)
    assert parent.metrics["best_validation_auroc"] == pytest.approx(result.best_score)
    assert parent.params["best.num_leaves"] == str(result.best_params["num_leaves"])
    assert parent.tags["model_sha256"] == result.model_sha256 and "test_auroc" in parent.metrics
    history = json.loads(
        team.artifacts.read_bytes(next(a["digest"] for a in parent.artifacts if a["path"] == "search_history.json"))
    )
    assert sorted(h["trial"] for h in history) == list(range(8))
    again = tune(tracker, data(1200), config, SPACE, trials=8, actor="alice")
    assert again.best_params == result.best_params and again.model_sha256 == result.model_sha256  # seeded


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "the search space is empty"),
        ({"num_leaves": {"int": [32, 4]}}, "num_leaves: the range \\[32, 4\\] is empty"),
        ({"num_leaves": {"int": [8, 8]}}, "the range \\[8, 8\\] is empty"),
        ({"num_leafs": {"int": [4, 32]}}, "lightgbm has no parameter 'num_leafs'"),
        ({"learning_rate": {"float": [0, 0.3], "log": True}}, "a log range needs a low above 0"),
        ({"boosting_type": {"choices": []}}, "the choices are empty"),
        ({"num_leaves": {"range": [4, 32]}}, "give exactly one of int, float or choices"),
    ],
)
def test_bad_search_spaces_are_refused_before_any_work(space: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_space(space, "lightgbm")


def test_a_tuning_needs_a_budget(team: Workspace) -> None:
    config = TrainConfig(FEATURES, "readmitted", ModelSpec("lightgbm"))
    with pytest.raises(InvalidInput, match="needs a budget"):
        tune(Tracker(team), data(), config, SPACE, trials=None, timeout=None, actor="alice")
    assert Tracker(team).list_runs() == []


@pytest.mark.slow
def test_trials_run_in_parallel_on_dask(team: Workspace) -> None:
    from medops.features.executor import open_executor

    tracker = Tracker(team)
    config = TrainConfig(FEATURES, "readmitted", ModelSpec("lightgbm", {"n_estimators": 30}), seed=5)
    executor = open_executor("dask-local")
    try:
        result = tune(tracker, data(1200), config, SPACE, trials=6, actor="alice", executor=executor)
    finally:
        executor.close()
    trials = tracker.list_runs(parent=result.run_id, limit=100)
    assert len(trials) == 6 and all(t.state == "finished" and "validation_auroc" in t.metrics for t in trials)
    assert tracker.get(result.run_id).metrics["best_validation_auroc"] == max(
        t.metrics["validation_auroc"] for t in trials
    )


def test_the_time_cap_is_recorded_when_it_stops_the_search(team: Workspace) -> None:
    tracker = Tracker(team)
    config = TrainConfig(FEATURES, "readmitted", ModelSpec("lightgbm", {"n_estimators": 40}), seed=5)
    result = tune(tracker, data(1200), config, SPACE, trials=500, timeout=0.5, actor="alice")
    assert result.trials < 500
    assert tracker.get(result.run_id).tags["budget.time_cap_hit"] == f"{result.trials} of 500 trials within 0.5 s"
