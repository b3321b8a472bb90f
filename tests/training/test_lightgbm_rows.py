"""LightGBM's single-row entry point gives the numbers ``predict`` gives, bit for bit."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from medops.training.lightgbm_rows import predict_rows


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    x[rng.random(x.shape) < 0.05] = np.nan  # LightGBM's own missing-value branches
    y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) + rng.normal(size=n) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("early_stopping", [False, True])
def test_each_row_scores_as_predict_does(early_stopping: bool) -> None:
    x, y = _data(3000, 1)
    model = lightgbm.LGBMClassifier(n_estimators=120, verbose=-1)
    if early_stopping:  # predict then uses the best iteration, not every tree
        valid = _data(500, 2)
        model.fit(x, y, eval_X=valid[0], eval_y=valid[1], callbacks=[lightgbm.early_stopping(5, verbose=False)])
        assert 0 < model.booster_.best_iteration < 120
    else:
        model.fit(x, y)
    booster = model.booster_
    rows, _ = _data(40, 3)
    assert np.array_equal(predict_rows(booster, rows), booster.predict(rows, num_threads=1))
    assert np.array_equal(predict_rows(booster, rows[:1]), booster.predict(rows[:1]))
    fortran = np.asfortranarray(rows[:5])
    assert np.array_equal(predict_rows(booster, fortran), booster.predict(fortran))
    text = lightgbm.Booster(model_str=booster.model_to_string())  # as a bundle carries it
    assert np.array_equal(predict_rows(text, rows), text.predict(rows))


def test_a_matrix_of_another_width_is_left_to_predict() -> None:
    x, y = _data(500, 1)
    booster = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y).booster_
    with pytest.raises(lightgbm.basic.LightGBMError):
        predict_rows(booster, x[:2, :5])  # predict's own error, not a read past the row
