"""What every online store is and does: the interface, and the checks and encoding all of them share.

A materialization replaces a view's whole online table. Each write builds a new
*generation* of the table next to the current one and then moves the view's pointer to it
in one atomic step, so readers see the old table or the new one, never a mix, and a write
that fails or is killed half-way leaves the old table as it was.

Values are stored as JSON: str, int, float, bool and None as they are; NaN and
infinities become None (missing); an aware datetime becomes ISO 8601 UTC text
(``2026-11-24T13:05:00.000000Z``), a naive datetime, a date or a time its
``isoformat()`` text; Decimal becomes float; NumPy scalars become the Python value. Any
other type is refused with InvalidInput, and the write changes nothing. Reads return the
JSON values (so a datetime feature comes back as text). Event times are stored as ISO
8601 UTC text and returned as aware UTC datetimes. A backend gets all of this by calling
``prepare_write`` before it touches its storage and encoding rows with ``Encoder``.

Error messages never quote an entity id or a value: ids may be patient pseudonyms.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from numbers import Integral, Real
from typing import Protocol

from medops.clock import to_iso
from medops.errors import ConfigError, InvalidInput, NotFound

BATCH = 5_000
"""Rows per executemany / Redis pipeline: big enough to amortize calls, small enough to bound memory."""

_STR = frozenset({str})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Progress = Callable[[int], None]


@dataclass(frozen=True)
class OnlineRow:
    """The online values of one entity: ``found`` is False (and values None) when it has no row."""

    values: dict[str, object]
    event_time: datetime | None
    found: bool


class OnlineStore(Protocol):
    """What a backend implements (see the module docstring for what each call must guarantee)."""

    def write(
        self,
        view: str,
        version: str,
        as_of: datetime,
        entity_ids: Sequence[str],
        event_times: Sequence[datetime | None],
        rows: Sequence[dict[str, object]],
        progress: Progress | None = None,
    ) -> int:
        """Replace the view's online table atomically; returns the number of rows written."""
        ...

    def read(self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> list[OnlineRow]:
        """One OnlineRow per id, in the order given."""
        ...

    def info(self, view: str) -> dict[str, object] | None:
        """view, version, as_of, rows and features of the current table, or None."""
        ...

    def views(self) -> list[str]:
        """Names of the views that have an online table, sorted."""
        ...

    def close(self) -> None: ...


def check_name(what: str, name: object, error: type[InvalidInput] | type[ConfigError] = InvalidInput) -> str:
    """View names and namespaces become parts of keys: only letters, digits, '.', '_', '-'."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise error(
            f"{what} {name!r} is not a valid name",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def not_found(view: str) -> NotFound:
    return NotFound(
        f"feature view {view!r} has no online table",
        code="online_not_materialized",
        view=view,
    )


def check_read_args(view: str, entity_ids: Sequence[str], features: Sequence[str] | None) -> None:
    if not isinstance(view, str) or not _NAME.match(view):
        raise not_found(str(view))
    if isinstance(entity_ids, str):
        raise InvalidInput("entity_ids must be a sequence of ids, not one string", hint="pass [entity_id]")
    if not _STR.issuperset(map(type, entity_ids)):
        raise InvalidInput("entity ids must be strings")
    if isinstance(features, str):
        raise InvalidInput("features must be a sequence of names, not one string", hint="pass [feature]")


def select_features(
    view: str, known: tuple[str, ...], known_set: frozenset[str], wanted: Sequence[str] | None
) -> tuple[str, ...]:
    """The requested features in the order asked; an unknown name is the caller's mistake."""
    if wanted is None:
        return known
    for name in wanted:
        if name not in known_set:
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise InvalidInput(
                f"feature view {view!r} has no feature {name!r}", hint=f"its features: {shown or 'none'}"
            )
    return tuple(wanted)


@dataclass(frozen=True)
class Prepared:
    """Validated write arguments: the ISO as_of and the row count."""

    as_of: str
    count: int


def prepare_write(
    view: str,
    version: str,
    as_of: datetime,
    entity_ids: Sequence[str],
    event_times: Sequence[datetime | None],
    rows: Sequence[Mapping[str, object]],
) -> Prepared:
    """Check everything that can be checked before touching the store."""
    check_name("feature view", view)
    if not isinstance(version, str) or not version:
        raise InvalidInput(f"version of feature view {view!r} must be a non-empty string")
    if not isinstance(as_of, datetime):
        raise InvalidInput(f"as_of of feature view {view!r} must be a datetime")
    as_of_iso = to_iso(as_of)
    if isinstance(entity_ids, str):
        raise InvalidInput("entity_ids must be a sequence of ids, not one string")
    n = len(entity_ids)
    if len(event_times) != n or len(rows) != n:
        raise InvalidInput(
            f"write of feature view {view!r} got {n} entity ids, {len(event_times)} event times and {len(rows)} rows",
            hint="give one event time and one row per entity id",
        )
    for i, entity in enumerate(entity_ids):
        if type(entity) is not str:
            raise InvalidInput(f"entity id at position {i} is a {type(entity).__name__}, not a string")
    distinct = len(set(entity_ids))
    if distinct != n:
        raise InvalidInput(
            f"write of feature view {view!r} repeats {n - distinct} entity id(s)",
            hint="an online table holds one row per entity; deduplicate first",
        )
    return Prepared(as_of_iso, n)


def _convert(view: str, feature: str, value: object) -> object:
    """One value made JSON-able: NaN -> None, dates -> ISO text, Decimal/NumPy -> Python numbers."""
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return to_iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    if isinstance(value, str):
        return str(value)
    item = getattr(value, "item", None)  # NumPy scalars (np.bool_ is not a numbers.Integral)
    if callable(item) and type(value).__module__ == "numpy":
        return _convert(view, feature, item())
    raise InvalidInput(
        f"feature {feature!r} of view {view!r} has a value of type {type(value).__name__}, which can't be stored",
        hint="online values must be strings, numbers, booleans, dates or null",
    )


_PLAIN = frozenset({str, int, float, bool, type(None)})


class Encoder:
    """Turns one view's rows into JSON text, collecting the feature names in first-seen order.

    Fast path: a dict of plain values goes straight to the C JSON encoder (allow_nan=False
    sends NaN and infinities to the slow path, which maps them to None).
    """

    def __init__(self, view: str) -> None:
        self.view = view
        self.features: dict[str, None] = {}
        self._keys: object = None
        self._last_time: datetime | None = None
        self._last_iso: str | None = None

    def values(self, row: Mapping[str, object]) -> str:
        if not isinstance(row, Mapping):
            raise InvalidInput(f"a row of feature view {self.view!r} is a {type(row).__name__}, not a mapping")
        keys = row.keys()
        if keys != self._keys:
            for name in keys:
                if name not in self.features:
                    if type(name) is not str or not name:
                        raise InvalidInput(f"feature view {self.view!r} has a feature name {name!r} that is not valid")
                    self.features[name] = None
            self._keys = keys
        if type(row) is dict and _PLAIN.issuperset(map(type, row.values())):
            try:
                return dumps(row)
            except ValueError:
                pass  # NaN or an infinity
        return dumps({name: _convert(self.view, name, value) for name, value in row.items()})

    def event_time(self, moment: datetime | None) -> str | None:
        """ISO text of an event time; rows often share one, so the last is remembered."""
        if moment is None:
            return None
        if moment is self._last_time:
            return self._last_iso
        if not isinstance(moment, datetime):
            raise InvalidInput(f"event time of feature view {self.view!r} must be a datetime or None")
        iso = to_iso(moment)
        self._last_time, self._last_iso = moment, iso
        return iso


dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
loads = json.loads


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
