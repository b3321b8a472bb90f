"""A trainer declared once is one the project file, training and model files accept; nothing else is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from medops.errors import ConfigError, InvalidInput
from medops.services.projects.project import ModelSpecYaml
from medops.training.estimators import Trainer, register_trainer, safe_types, trainer_names, unregister_trainer
from medops.training.model_file import loads
from medops.training.trainers import ModelSpec, build_pipeline, estimator_for, fit
from tests.factories import COHORT_FEATURES as FEATURES
from tests.factories import cohort

KD_TREE_TYPES = frozenset({"sklearn.neighbors._kd_tree.KDTree", "sklearn.metrics._dist_metrics.EuclideanDistance64"})


def _neighbors(seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(algorithm="kd_tree")


@pytest.fixture
def neighbors() -> Iterator[Trainer]:
    trainer = register_trainer(Trainer("neighbors", _neighbors, scale_numbers=True, safe_types=KD_TREE_TYPES))
    yield trainer
    unregister_trainer("neighbors")


def test_a_registered_trainer_is_trained_saved_and_loaded(neighbors: Trainer) -> None:
    assert trainer_names()[-1] == "neighbors" and KD_TREE_TYPES <= safe_types()
    assert ModelSpecYaml.model_validate({"estimator": "neighbors"}).estimator == "neighbors"
    frame = cohort(300, biased=False)
    spec = ModelSpec("neighbors", {"n_neighbors": 7})
    numeric = build_pipeline(frame, FEATURES, spec, 0).named_steps["prep"].transformers[0][1]
    assert "scale" in numeric.named_steps  # declared scale_numbers
    model = fit(frame, FEATURES, "readmitted", spec, seed=0)
    loaded = loads(model.to_bytes())  # its KD tree is a declared safe type
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    with pytest.raises(InvalidInput, match="neighbors has no parameter 'num_leaves'"):
        estimator_for(ModelSpec("neighbors", {"num_leaves": 8}), 0)
    with pytest.raises(ConfigError, match="'neighbors' is registered already"):
        register_trainer(neighbors)


def test_an_undeclared_trainer_and_its_types_are_refused() -> None:
    trainer = register_trainer(Trainer("neighbors", _neighbors, safe_types=KD_TREE_TYPES))
    try:
        blob = fit(cohort(200, biased=False), FEATURES, "readmitted", ModelSpec("neighbors"), seed=0).to_bytes()
    finally:
        unregister_trainer(trainer.name)
    assert not KD_TREE_TYPES & safe_types()
    with pytest.raises(InvalidInput, match="types outside the safe list: .*KDTree"):
        loads(blob)
    with pytest.raises(InvalidInput, match="estimator 'neighbors' is not known") as exc:
        estimator_for(ModelSpec("neighbors"), 0)
    assert exc.value.hint == "estimators: logistic_regression, random_forest, hist_gradient_boosting, lightgbm"
    with pytest.raises(ValidationError, match="Input should be 'logistic_regression', 'random_forest'"):
        ModelSpecYaml.model_validate({"estimator": "neighbors"})
    with pytest.raises(ConfigError, match="not registered"):
        unregister_trainer("neighbors")
