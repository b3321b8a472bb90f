"""Large reads of the metadata store as Arrow record batches, never as Python rows.

A month of the prediction log can hold ten million rows. Read through SQLAlchemy (or any DB-API
driver), each row becomes a tuple of Python objects, a datetime parsed per row among them: most of
a window's time went there. ADBC, Arrow's own database connectivity, hands a query's result over as
columns from C (SQLite's driver from the database file, PostgreSQL's from a binary COPY), streamed
in batches, so memory holds one batch whatever the table's size.

The SQL is the caller's, with positional parameters written ``?`` (integers and strings). On
PostgreSQL they are written into the SQL as quoted literals: the driver streams a query's result
through COPY only when it has no bound parameters, and otherwise holds the whole result in memory
(2 GB for a million logged predictions; a month of ten million failed). A read opens its own
connection, read-only on both backends, so it can never write; on PostgreSQL its session also
sets ``standard_conforming_strings``, the setting the literals' quoting relies on, whatever the
server's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

from medops.errors import MedopsError, StoreError

if TYPE_CHECKING:
    import pyarrow as pa

    from medops.store.database import Database

SQLITE_BATCH_ROWS = 65_536
_PLACEHOLDER = re.compile(r"\?")


def arrow_batches(db: Database, sql: str, params: Sequence[Any] = ()) -> Iterator[pa.RecordBatch]:
    """The query's result, batch by batch (a batch per few tens of thousands of rows)."""
    url = make_url(db.url)
    sqlite = url.get_backend_name() == "sqlite"
    try:
        connection, options = _sqlite(url.database, db.busy_timeout) if sqlite else _postgresql(url)
    except Exception as exc:  # noqa: BLE001 - the drivers' errors are not medops's; say which store
        raise StoreError(f"could not open {db.display_url} for a bulk read: {exc}") from exc
    if not sqlite:  # a query with bound parameters is not streamed by the driver (only COPY is): inline them
        values = iter(params)
        sql, params = _PLACEHOLDER.sub(lambda _: _literal(next(values)), sql), ()
    try:
        cursor = connection.cursor()
        if options:
            cursor.adbc_statement.set_options(**options)
        cursor.execute(sql, tuple(params) if params else None)
        yield from cursor.fetch_record_batch()
    except Exception as exc:  # noqa: BLE001 - as above; a medops error raised by the consumer passes through
        if isinstance(exc, MedopsError):
            raise
        raise StoreError(f"the bulk read from {db.display_url} failed: {exc}") from exc
    finally:
        connection.close()


def _literal(value: Any) -> str:
    """A parameter as a PostgreSQL literal: integers as digits, anything else as a quoted string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a bulk read takes integers and strings as parameters, not {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if "\x00" in value:
        raise StoreError("a bulk read's string parameter holds a NUL character, which PostgreSQL can't store")
    return "'" + value.replace("'", "''") + "'"  # standard_conforming_strings: a backslash is a backslash


def _sqlite(database: str | None, busy_timeout: float) -> tuple[Any, dict[str, str]]:
    import adbc_driver_sqlite.dbapi

    if not database or database == ":memory:":
        raise StoreError("an in-memory SQLite database can't be read by a second connection")
    connection = adbc_driver_sqlite.dbapi.connect(f"file:{quote(database)}?mode=ro")
    try:
        # as the store's own connections wait: a writer's checkpoint can hold a reader off for a moment, and
        # the driver's default is to fail at once ("database is locked")
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.fetchall()
        cursor.close()
    except Exception:
        connection.close()
        raise
    return connection, {"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)}


# libpq's ``options``: the session's settings, fixed at connection, before any statement
_SESSION = "-c default_transaction_read_only=on -c standard_conforming_strings=on"


def _postgresql(url: URL) -> tuple[Any, dict[str, str]]:
    import adbc_driver_postgresql.dbapi

    given = url.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    options = f"{given} {_SESSION}" if given else _SESSION  # later settings win: ours
    plain = url.set(drivername="postgresql").difference_update_query(["options"])
    uri = plain.render_as_string(hide_password=False)
    # libpq reads %20 as a space, not SQLAlchemy's "+"
    uri += ("&" if plain.query else "?") + "options=" + quote(options, safe="")
    return adbc_driver_postgresql.dbapi.connect(uri), {}
