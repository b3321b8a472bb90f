"""Run model files are skops, canonical: the same model gives the same bytes, and nothing unsafe loads."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from medops.errors import InvalidInput
from medops.training.model_file import dumps, loads
from medops.training.trainers import FittedModel, ModelSpec, fit
from tests.factories import COHORT_FEATURES as FEATURES
from tests.factories import cohort


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("logistic_regression"),
        ModelSpec("random_forest", {"n_estimators": 5}),
        ModelSpec("hist_gradient_boosting", {"max_iter": 5}),
        ModelSpec("lightgbm", {"n_estimators": 5}),
        ModelSpec("logistic_regression", calibration="isotonic"),
        ModelSpec("logistic_regression", calibration="sigmoid"),
    ],
    ids=lambda s: f"{s.estimator}{'-' + s.calibration if s.calibration else ''}",
)
def test_the_same_model_gives_the_same_file_and_the_same_predictions(spec: ModelSpec) -> None:
    frame = cohort(400, biased=False)
    model = fit(frame, FEATURES, "readmitted", spec, seed=3)
    copy = FittedModel(pickle.loads(pickle.dumps(model.pipeline)), list(model.features), list(model.classes))
    blob = dumps(model)
    assert blob == dumps(copy) and not blob.startswith(b"\x80")  # a zip, not a pickle
    loaded = loads(blob)
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame)) and loaded.features == FEATURES


def test_a_file_with_an_unsafe_type_is_refused_before_anything_is_built() -> None:
    class Sneaky(StandardScaler):  # any class outside scikit-learn and the safe list
        pass

    frame = cohort(100, biased=False)
    pipeline = Pipeline([("s", Sneaky())]).fit(frame[FEATURES])
    import skops.io as sio

    blob = bytes(sio.dumps({"pipeline": pipeline, "features": FEATURES, "classes": [0, 1]}))
    with pytest.raises(InvalidInput, match="outside the safe list: .*Sneaky"):
        loads(blob)
    with pytest.raises(InvalidInput, match="not a skops file"):
        loads(pickle.dumps({"pipeline": None}))
    assert zipfile.is_zipfile(io.BytesIO(dumps(FittedModel(pipeline, FEATURES, [0, 1]))))
