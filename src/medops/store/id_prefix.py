"""Records found by the first characters of their id, as the CLI, the API and the dashboard let
a user type one (``medops runs show 3f9a1c``).

The ids are lowercase hex (``uuid4().hex``), so the ids that start with a prefix are exactly
those in [prefix, prefix + "g"): a range the primary key's index answers on SQLite and
PostgreSQL alike. ``LIKE 'prefix%'`` (SQLAlchemy's ``startswith``) reads every row instead:
SQLite's LIKE ignores case, so it can't use a binary index, and neither can PostgreSQL's
under a collation other than C.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_

HEX = frozenset("0123456789abcdef")


def is_hex(text: str) -> bool:
    return bool(text) and all(c in HEX for c in text)


def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """The rows whose id (lowercase hex) starts with ``prefix``, found through the id's index."""
    return and_(column >= prefix, column < prefix + "g")
