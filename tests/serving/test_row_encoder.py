"""Clean rows encoded in one pass give the very matrix the checked columns give; anything else is
left to the general path, which names the problem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medops.registry.bundles import input_schema_doc
from medops.registry.compiled import compile_pipeline
from medops.serving.row_encoder import row_encoder
from medops.serving.validation import RowsInvalid, check_rows
from medops.training.input_schema import InputSchema
from medops.training.trainers import ModelSpec, fit

FEATURES = ["age", "los", "payer", "ward"]


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 96, n).astype(float),
            "los": rng.exponential(3, n),
            "payer": rng.choice(["medicaid", "medicare", "private"], n),
            "ward": rng.choice(["a", "b", "c", "d"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "los"] = np.nan  # optional: imputed by the median
    frame.loc[rng.random(n) < 0.1, "ward"] = None  # optional: imputed by the most frequent
    signal = (frame["age"] - 60) / 20 - frame["los"].fillna(3) / 4 + (frame["payer"] == "medicaid")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    return frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in frame[FEATURES].to_dict("records"):
        rows.append({k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and math.isnan(v)))})
    rows[0]["age"] = int(rows[0]["age"])  # JSON gives whole numbers as int
    rows[1]["ward"] = None  # sent as null rather than left out
    return rows


@pytest.fixture(
    scope="module",
    params=[
        ("logistic_regression", {}),
        ("random_forest", {"n_estimators": 10}),
        ("hist_gradient_boosting", {"max_iter": 15}),
        ("lightgbm", {"n_estimators": 25}),
    ],
    ids=lambda p: p[0],
)
def model(request: pytest.FixtureRequest) -> tuple[Any, dict[str, Any]]:
    frame = _frame(800)
    fitted = fit(frame, FEATURES, "label", ModelSpec(*request.param), 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None
    schema = input_schema_doc(InputSchema.from_frame(frame, FEATURES), FEATURES)
    return compiled, schema


def test_clean_rows_give_the_checked_matrix_and_probabilities(model: tuple[Any, dict[str, Any]]) -> None:
    compiled, schema = model
    encoder = row_encoder(schema, compiled)
    assert encoder is not None
    rows = _records(_frame(40, seed=2))
    rows = [r for r in rows if _clean(r, schema)]
    assert len(rows) >= 20
    for n in (1, 2, len(rows)):
        x = encoder.encode(rows[:n])
        checked = check_rows(rows[:n], schema)
        expected = compiled.matrix_of(checked.columns, n)
        assert x is not None and np.array_equal(x, expected)
        assert x.flags.c_contiguous == expected.flags.c_contiguous
        assert np.array_equal(compiled.predict_matrix(x), compiled.predict_columns(checked.columns, n))


def _clean(row: dict[str, Any], schema: dict[str, Any]) -> bool:
    try:
        return not check_rows([row], schema).flags[0]
    except RowsInvalid:
        return False


@pytest.mark.parametrize(
    "change",
    [
        {"age": 500.0},  # out of range
        {"age": float("nan")},
        {"age": float("inf")},
        {"age": 10**400},  # a whole number no float holds
        {"age": "61"},  # a string in a numeric field
        {"age": True},
        {"age": None},  # required
        {"payer": "veterans"},  # unseen
        {"payer": 3},
        {"payer": ["medicare"]},
        {"mrn": "0042"},  # unknown field
    ],
)
def test_anything_but_a_clean_row_is_left_to_the_checks(
    model: tuple[Any, dict[str, Any]], change: dict[str, Any]
) -> None:
    compiled, schema = model
    encoder = row_encoder(schema, compiled)
    assert encoder is not None
    row = {"age": 61, "los": 2.5, "payer": "medicare", "ward": "b", **change}
    assert encoder.encode([row]) is None
    assert encoder.encode([{"age": 61, "payer": "medicare"}, row]) is None
    assert encoder.encode(["not a row"]) is None


def test_the_flag_policy_still_flags(model: tuple[Any, dict[str, Any]]) -> None:
    compiled, schema = model
    flagging = {**schema, "out_of_range": "flag"}
    encoder = row_encoder(flagging, compiled)
    assert encoder is not None
    row = {"age": 200.0, "payer": "medicare"}
    assert encoder.encode([row]) is None  # the general path scores it and names the flag
    assert check_rows([row], flagging).flags == [["age"]]


def test_a_schema_that_does_not_describe_the_model_gets_no_encoder(model: tuple[Any, dict[str, Any]]) -> None:
    compiled, schema = model
    missing = {**schema, "features": [f for f in schema["features"] if f["name"] != "payer"]}
    assert row_encoder(missing, compiled) is None
    features = [{**f, "type": "text"} if f["name"] == "ward" else f for f in schema["features"]]
    assert row_encoder({**schema, "features": features}, compiled) is None
