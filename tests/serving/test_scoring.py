"""Prediction ids (UUID version 7, so the log's index grows at its end) and the answer's JSON."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import pytest

from medops.serving.scoring import encode_answer, time_ordered_id, time_ordered_ids


def test_prediction_ids_are_uuid7_unique_and_ordered_by_millisecond() -> None:
    first = [time_ordered_id() for _ in range(2_000)]
    time.sleep(0.002)
    later = time_ordered_id()
    parsed = [uuid.UUID(i) for i in first]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert len(set(first)) == len(first)
    assert all(i < later for i in first)  # the text sorts as the time does
    now_ms = time.time_ns() // 1_000_000
    assert 0 <= now_ms - (parsed[0].int >> 80) < 60_000


def test_a_request_s_ids_come_from_one_read_of_the_clock_and_of_the_random_source() -> None:
    before = time_ordered_id()
    time.sleep(0.002)
    batch = time_ordered_ids(500)
    time.sleep(0.002)
    after = time_ordered_id()
    parsed = [uuid.UUID(i) for i in batch]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert len(set(batch)) == len(batch) and str(parsed[0]) == batch[0]  # canonical text, as uuid.UUID writes it
    assert len({u.int >> 80 for u in parsed}) == 1  # one millisecond for the request
    assert all(before < i < after for i in batch)
    assert time_ordered_ids(0) == []


def _rows() -> list[dict[str, Any]]:
    plain = {
        "prediction_id": time_ordered_id(),
        "probability": 0.1234567890123,
        "decision": 0,
        "threshold": 0.35,
        "model": "readmission_30d",
        "version": 3,
        "bundle_sha256": "ab" * 32,
    }
    return [
        plain,
        {**plain, "prediction_id": time_ordered_id(), "probability": 1.0, "decision": 1},
        {**plain, "probability": 1e-300, "threshold": 1, "model": 'Säuglinge "neo"\n\u2028'},  # another model's part
        {**plain, "probability": 0.0, "out_of_range": ["age"]},
        {**plain, "explanation": {"base": -1.5, "contributions": {"age": 0.25}}, "variant": "canary"},
        {**plain, "decision": True},  # not the form prediction() builds: the encoder writes it as it is
        {**plain, "threshold": 0.35, "version": 3.0},  # equal to the first row's model part, not the same JSON
        {**plain, "version": True, "threshold": 1.0},
        dict(reversed(list(plain.items()))),  # the same keys in another order
    ]


def test_an_answer_is_encoded_as_the_json_encoder_writes_it() -> None:
    for rows in ([], _rows(), _rows()[:1], _rows() * 30):
        expected = json.dumps(
            {"request_id": "c0ffee" * 5 + "00", "predictions": rows},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode()
        assert encode_answer("c0ffee" * 5 + "00", rows) == expected
    with pytest.raises(ValueError):  # no NaN in an answer, whichever way it is encoded
        encode_answer("r", [{**_rows()[0], "probability": math.nan}])
