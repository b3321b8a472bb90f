"""Prediction ids: UUID version 7, so the log's index grows at its end."""

from __future__ import annotations

import time
import uuid

from medops.serving.scoring import time_ordered_id, time_ordered_ids


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
