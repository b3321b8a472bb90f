"""Time in medops is timezone-aware UTC; naive timestamps are refused rather than guessed."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from medops.errors import InvalidInput

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``: a positive length of time; None for anything else."""
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) <= 0:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """Fixed-width ISO 8601 in UTC with microseconds, so strings sort as times do."""
    if moment.tzinfo is None:
        raise InvalidInput(f"timestamp {moment.isoformat()} has no timezone; give it in UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_second: tuple[int, str] = (-1, "")  # the second now_iso last formatted, and its text


def now_iso() -> str:
    """``to_iso(utc_now())`` in a fifth of the time: a server stamps every prediction it answers."""
    global _second
    second, fraction = divmod(time.time_ns() // 1000, 1_000_000)
    known = _second  # one read: another thread may replace it meanwhile
    if second != known[0]:
        known = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{known[1]}.{fraction:06d}Z"


def parse_iso(text: str) -> datetime:
    """Read an ISO 8601 time given by a user; a date alone means midnight UTC."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{text!r} is not an ISO 8601 time", hint="use for example 2026-11-24 or 2026-11-24T13:05:00Z"
        ) from exc
    if moment.tzinfo is None:
        if "T" in raw or " " in raw:
            raise InvalidInput(f"time {text!r} has no timezone", hint="append Z for UTC, e.g. 2026-11-24T13:05:00Z")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
