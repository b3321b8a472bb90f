"""Connections to the metadata database, with one transaction discipline for both backends.

SQLite: WAL journal, a busy timeout, and every write transaction opened with
BEGIN IMMEDIATE, so a writer waits for the lock up front instead of failing halfway
("database is locked" on lock upgrade can't be retried by SQLite's busy handler).
PostgreSQL: psycopg 3, READ COMMITTED; serialization points take advisory locks.
A new SQLite file is created 0600 before SQLite opens it: it holds password hashes and
the audit trail, and SQLite gives its -wal and -shm files the same mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from medops.config import redact_url
from medops.errors import (
    ConfigError,
    Conflict,
    DatabaseBusy,
    DatabaseUnreachable,
    MedopsError,
    StoreError,
)
from medops.private_files import create_private_file


def normalize_url(url: str) -> str:
    """postgresql:// means psycopg 3 here: it is the driver medops installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine plus the two ways medops talks to it: read() and write()."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        self.busy_timeout = busy_timeout
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise ConfigError(f"metadata_url {redact_url(url)!r} is not a database URL") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine()
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                self.url,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5, "application_name": "medops"},
            )
        else:
            raise ConfigError(f"metadata database {self.dialect!r} is not supported (use sqlite or postgresql)")
        self.writer = self.engine.execution_options(medops_write=True)

    def _sqlite_engine(self) -> Engine:
        engine = create_engine(self.url, connect_args={"timeout": self.busy_timeout})
        timeout_ms = int(self.busy_timeout * 1000)
        database = make_url(self.url).database or ""
        on_disk = database not in ("", ":memory:") and not database.startswith("file:")

        @event.listens_for(engine, "do_connect")
        def _before_connect(*_args: Any) -> None:
            if on_disk and Path(database).parent.is_dir():  # a missing folder: SQLite's own error says so
                create_private_file(Path(database))

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            write = conn.get_execution_options().get("medops_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.guard(), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any error."""
        with self.guard(), Session(self.writer, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except MedopsError:
            raise
        except SAIntegrityError as exc:
            raise Conflict(f"the change conflicts with stored data: {_driver_message(exc)}") from exc
        except OperationalError as exc:
            raise translate_operational(exc, self.display_url) from exc
        except DBAPIError as exc:
            raise StoreError(f"the metadata database refused the operation: {_driver_message(exc)}") from exc

    def ping(self) -> None:
        """Connect and run a trivial query, turning driver failures into medops errors."""
        with self.guard(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _driver_message(exc: DBAPIError) -> str:
    first = str(exc.orig).strip().splitlines()
    return first[0] if first else type(exc.orig).__name__


_UNREACHABLE = (
    "unable to open database",
    "connection",
    "could not",
    "resolve host",
    "timeout",
    "timed out",
    "refused",
    "does not exist",
    "authentication failed",
    "no password supplied",
    "name or service",
)


def translate_operational(exc: OperationalError, display_url: str) -> StoreError:
    message = _driver_message(exc)
    lowered = message.lower()
    if "database is locked" in lowered or "database is busy" in lowered:
        return DatabaseBusy(
            "the metadata database stayed locked by another writer past the busy timeout",
            hint="retry, or raise db_busy_timeout in medops.toml",
        )
    if any(sign in lowered for sign in _UNREACHABLE):
        return DatabaseUnreachable(
            f"can't reach the metadata database {display_url}: {message}",
            hint="check metadata_url (or MEDOPS_METADATA_URL) and that the server is running",
        )
    return StoreError(f"metadata database error: {message}")


def dialect_insert(session: Session) -> Any:
    """The backend's INSERT, which has ON CONFLICT (upserts and insert-if-absent)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
