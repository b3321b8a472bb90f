"""`medops train` options over the project's train section: checked like the file, before any work."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml

from medops.errors import InvalidInput
from medops.services.projects.project import TrainSpec
from medops.services.projects.templates import TEMPLATES_DIR
from medops.services.projects.train import with_overrides


@pytest.fixture
def spec() -> TrainSpec:
    doc = yaml.safe_load((TEMPLATES_DIR / "readmission" / "medops.yaml").read_text(encoding="utf-8"))
    return TrainSpec.model_validate(doc["train"])


def test_no_options_leave_the_file_as_it_is(spec: TrainSpec) -> None:
    assert with_overrides(spec, {}) == spec
    assert with_overrides(spec, {"seed": None, "estimator": None}) == spec


def test_options_replace_settings_and_merge_parameters(spec: TrainSpec) -> None:
    changed = with_overrides(
        spec, {"params": {"num_leaves": 31}, "seed": 7, "split": "stratified", "class_weight": "none"}
    )
    assert changed.model.params == {**spec.model.params, "num_leaves": 31}
    assert changed.seed == 7 and changed.split.kind == "stratified" and changed.model.class_weight is None
    assert changed.split.test_size == spec.split.test_size and spec.seed == 42  # the original is untouched
    dated = with_overrides(spec, {"split": "temporal", "cutoff": "2025-06-01"})
    assert dated.split.cutoff == date(2025, 6, 1)


def test_a_new_estimator_starts_from_its_own_defaults(spec: TrainSpec) -> None:
    changed = with_overrides(spec, {"estimator": "logistic_regression", "params": {"C": 0.5}})
    assert changed.model.estimator == "logistic_regression" and changed.model.params == {"C": 0.5}
    same = with_overrides(spec, {"estimator": spec.model.estimator})
    assert same.model.params == spec.model.params


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"estimator": "xgboost"}, "estimator (train.model.estimator)"),
        ({"params": {"nope": 1}}, "lightgbm has no parameter 'nope'"),
        ({"estimator": "logistic_regression", "params": {"num_leaves": 8}}, "has no parameter 'num_leaves'"),
        ({"split": "random"}, "split (train.split.kind)"),
        ({"test_size": 1.5}, "test_size (train.split.test_size)"),
        ({"cutoff": "last week"}, "cutoff (train.split.cutoff)"),
        ({"calibration": "platt"}, "calibration (train.model.calibration)"),
        ({"allow_leakage": ["everything"]}, "allow_leakage (train.allow_leakage.0)"),
        ({"experiment": "Q3 baseline"}, "experiment (train.experiment)"),
        ({"features": ["x"]}, "can't override 'features'"),
    ],
)
def test_a_bad_option_is_named(spec: TrainSpec, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        with_overrides(spec, changes)
    assert message in str(err.value)
