"""The reader thread hands over items in order, re-raises its errors, and stops when the consumer does."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from medops.data.prefetch import prefetch
from medops.errors import SourceError


def test_items_arrive_in_order() -> None:
    assert list(prefetch(iter(range(50)))) == list(range(50))


def test_a_source_error_reaches_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise SourceError("in.csv, line 3: expected 4 fields, found 5")

    seen = []
    with pytest.raises(SourceError, match="line 3"):
        for item in prefetch(failing()):
            seen.append(item)
    assert seen == [1]


def test_stopping_early_ends_the_thread() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    for item in prefetch(endless()):
        if item == 3:
            break
    assert threading.active_count() == before and len(produced) <= 6
