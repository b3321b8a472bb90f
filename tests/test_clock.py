"""The clock's fast stamp reads as the slow one does."""

from __future__ import annotations

import pytest

from medops import clock
from medops.clock import now_iso, parse_iso, to_iso, utc_now


def test_now_iso_is_to_iso_of_the_moment_it_is_called() -> None:
    before = to_iso(utc_now())
    stamp = now_iso()
    after = to_iso(utc_now())
    assert len(stamp) == len(before) and before <= stamp <= after  # fixed width: strings sort as times
    assert to_iso(parse_iso(stamp)) == stamp


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [
        (1_764_907_200_000_000_000, "2025-12-05T04:00:00.000000Z"),
        (1_764_907_200_999_999_999, "2025-12-05T04:00:00.999999Z"),
        (1_764_907_201_000_001_000, "2025-12-05T04:00:01.000001Z"),  # the next second: its text is made anew
        (951_782_400_123_456_000, "2000-02-29T00:00:00.123456Z"),
    ],
)
def test_now_iso_formats_each_second_and_fraction(
    monkeypatch: pytest.MonkeyPatch, nanoseconds: int, expected: str
) -> None:
    monkeypatch.setattr(clock.time, "time_ns", lambda: nanoseconds)
    assert now_iso() == expected
