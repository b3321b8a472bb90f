"""A chunk encoded straight from Arrow gives the very matrix, flags and probabilities the general
path (pandas, then the predictor's checks and compiled matrix) gives; anything it does not
understand, or a chunk the policy refuses, is left to the general path."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from medops.errors import InvalidInput
from medops.registry.bundles import Bundle
from medops.registry.compiled import compile_pipeline
from medops.registry.predictor import Predictor
from medops.serving.batch import score_chunk
from medops.serving.batch_encoder import encode_chunk
from medops.training.input_schema import InputSchema
from medops.training.trainers import ModelSpec, fit

FEATURES = ["age", "los", "payer", "ward", "visits"]


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 96, n).astype(float),
            "los": rng.exponential(3, n),
            "payer": rng.choice(["medicaid", "medicare", "private"], n),
            "ward": rng.choice(["a", "b", "c", "d"], n),
            "visits": rng.integers(0, 9, n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "los"] = np.nan  # optional: imputed by the median
    frame.loc[rng.random(n) < 0.1, "ward"] = None  # optional: imputed by the most frequent
    signal = (frame["age"] - 60) / 20 - frame["los"].fillna(3) / 4 + (frame["payer"] == "medicaid")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    return frame


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
def predictor(request: pytest.FixtureRequest) -> Predictor:
    frame = _frame(800)
    fitted = fit(frame, FEATURES, "label", ModelSpec(*request.param), 0)
    compiled = compile_pipeline(fitted.pipeline)
    assert compiled is not None
    schema = InputSchema.from_frame(frame, FEATURES)
    # the bundle is not read on the compiled path these tests take
    return Predictor(cast(Bundle, None), schema, 0.5, compiled, FEATURES, out_of_range="flag")


def _messy(n: int, seed: int) -> pd.DataFrame:
    """Fresh rows with every case: missing numbers and categories, unseen categories, out-of-range values."""
    frame = _frame(n, seed).drop(columns="label")
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(n) < 0.05, "age"] = 130.0  # above the trained range
    frame.loc[rng.random(n) < 0.05, "age"] = np.nan  # missing where training never was
    frame.loc[rng.random(n) < 0.05, "payer"] = "self-pay"  # never seen
    frame.loc[rng.random(n) < 0.05, "payer"] = None
    frame.loc[rng.random(n) < 0.05, "ward"] = "z"
    return frame


def _general(predictor: Predictor, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    frame = batch.to_pandas(strings_to_categorical=True)
    columns = predictor._checked(frame)
    assert predictor.compiled is not None
    flags = np.zeros(len(frame), dtype=bool)
    for rows in predictor.flags.values():
        flags |= rows
    return predictor.compiled.matrix_of(columns, len(frame)), flags


def _batches(frame: pd.DataFrame) -> dict[str, pa.RecordBatch]:
    plain = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    visits = pa.array(frame["visits"].astype("Int64"), type=pa.int32())
    return {
        "strings": plain,
        "dictionary": pa.RecordBatch.from_pandas(frame.astype({"payer": "category"}), preserve_index=False),
        "large strings": plain.set_column(
            plain.schema.get_field_index("ward"), "ward", plain.column("ward").cast(pa.large_string())
        ),
        "int32 numbers": plain.set_column(plain.schema.get_field_index("visits"), "visits", visits),
    }


@pytest.mark.parametrize("n", [1, 40, 300, 2_000])  # either side of the general path's SMALL (256)
def test_the_encoded_chunk_is_the_general_paths_bit_for_bit(predictor: Predictor, n: int) -> None:
    frame = _messy(n, seed=n)
    for kind, batch in _batches(frame).items():
        encoded = encode_chunk(predictor, batch)
        assert encoded is not None, kind
        matrix, flags = encoded
        expected, expected_flags = _general(predictor, batch)
        assert np.array_equal(matrix, expected, equal_nan=True), kind
        assert matrix.flags.c_contiguous == expected.flags.c_contiguous, kind
        assert np.array_equal(flags, expected_flags), kind
        assert predictor.compiled is not None
        fast = predictor.compiled.predict_matrix(matrix)
        assert np.array_equal(fast, predictor.predict_proba(batch.to_pandas(strings_to_categorical=True)))
    if n > 1:
        assert flags.any() and not flags.all()  # the cases are there


def test_missing_integers_and_booleans_read_as_the_general_path_reads_them(predictor: Predictor) -> None:
    frame = _messy(300, seed=7)
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    visits = pa.array([None if i % 7 == 0 else i % 9 for i in range(300)], type=pa.int64())
    booleans = pa.array([None if i % 5 == 0 else i % 2 == 0 for i in range(300)], type=pa.bool_())
    for column in (visits, booleans):
        changed = batch.set_column(batch.schema.get_field_index("visits"), "visits", column)
        encoded = encode_chunk(predictor, changed)
        assert encoded is not None
        expected, expected_flags = _general(predictor, changed)
        assert np.array_equal(encoded[0], expected, equal_nan=True)
        assert np.array_equal(encoded[1], expected_flags)


def test_columns_it_does_not_understand_go_to_the_general_path(predictor: Predictor) -> None:
    frame = _messy(300, seed=3)
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    as_text = batch.set_column(0, "age", batch.column("age").cast(pa.string()))  # numbers sent as text (CSV)
    assert encode_chunk(predictor, as_text) is None
    probability, _, flagged = score_chunk(predictor, as_text)  # still scored, the general way
    general = predictor.predict_proba(as_text.to_pandas(strings_to_categorical=True))
    assert np.array_equal(probability, general)
    assert flagged.any()
    codes = pa.array([0, 1] * 150, type=pa.int8())
    numeric_ward = batch.set_column(batch.schema.get_field_index("ward"), "ward", codes)
    assert encode_chunk(predictor, numeric_ward) is None  # a categorical feature held as numbers
    assert encode_chunk(predictor, batch.drop_columns(["payer"])) is None  # the general path names the column
    with pytest.raises(InvalidInput, match="no column 'payer'"):
        score_chunk(predictor, batch.drop_columns(["payer"]))


def test_a_chunk_the_policy_refuses_is_refused_by_the_general_path(predictor: Predictor) -> None:
    rejecting = Predictor(predictor.bundle, predictor.schema, 0.5, predictor.compiled, FEATURES, out_of_range="reject")
    frame = _frame(800).drop(columns="label").head(300)  # training rows: inside every check
    clean = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    assert encode_chunk(rejecting, clean) is not None
    frame.iloc[3, frame.columns.get_loc("age")] = 130.0
    refused = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    assert encode_chunk(rejecting, refused) is None
    with pytest.raises(InvalidInput, match=r"row 3, column 'age': outside the accepted range"):
        score_chunk(rejecting, refused)
    # unchecked (a monitor counting drift): the fast path scores the row the general path would, unflagged
    assert encode_chunk(rejecting, refused, refuse=False) is not None
    probability, _, flagged = score_chunk(rejecting, refused, check=False)
    general = rejecting.predict_proba(refused.to_pandas(strings_to_categorical=True), check=False)
    assert np.array_equal(probability, general) and not flagged.any()


def test_score_chunk_answers_the_same_either_way(predictor: Predictor) -> None:
    batch = pa.RecordBatch.from_pandas(_messy(500, seed=11), preserve_index=False)
    probability, decision, flagged = score_chunk(predictor, batch)
    expected, expected_flags = _general(predictor, batch)
    assert predictor.compiled is not None
    assert np.array_equal(probability, predictor.compiled.predict_matrix(expected))
    assert np.array_equal(decision, (probability >= 0.5).astype(np.int8))
    assert np.array_equal(flagged, expected_flags)
