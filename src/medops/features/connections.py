"""The feature store's DuckDB databases: opened once per workspace, a cursor per use.

Opening a DuckDB database costs about 12 ms (its buffer pool, catalog and extensions); a
cursor on an open one costs microseconds. So a workspace holds two in-memory databases,
each opened on first use and closed with the workspace, and every call takes a cursor of
its own: a DuckDB connection must not be shared across threads, its cursors may.

Two, not one, because the sandbox (no file or network access) can't be lifted from a
database once set, and its memory limit is the database's, not a cursor's:

- ``sandboxed`` runs SQL written in a project file (view expressions and filters,
  on-demand features): it computes over the Arrow tables it is given and reads nothing.
- ``reader`` reads verified feature tables by path with DuckDB's own Parquet reader and
  joins them to labels. Its SQL is built by medops from feature names (checked against
  ``[a-z][a-z0-9_]*`` and quoted), durations and numbers: no text from a project file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import duckdb

from medops.data.duck import connect, sandbox
from medops.platform import Platform

KEY = "features.duckdb"


class DuckConnections:
    """A workspace's two DuckDB databases (see the module), each opened on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._sandboxed: duckdb.DuckDBPyConnection | None = None
        self.opened = 0  # databases opened so far: what a test of reuse counts

    def _open(self, *, sandboxed: bool) -> duckdb.DuckDBPyConnection:
        con = connect()
        # Cursors are sessions of their own: the time zone is set for the database, so every
        # cursor works in UTC as a fresh medops connection does.
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        if sandboxed:
            sandbox(con)
        self.opened += 1
        return con

    @contextmanager
    def _cursor(self, *, sandboxed: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of one of the two databases (opened on first use), closed after the call."""
        with self._lock:
            if sandboxed and self._sandboxed is None:
                self._sandboxed = self._open(sandboxed=True)
            if not sandboxed and self._reader is None:
                self._reader = self._open(sandboxed=False)
            database = self._sandboxed if sandboxed else self._reader
            assert database is not None
            cursor = database.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor that may read files: for SQL medops writes over verified artifacts."""
        return self._cursor(sandboxed=False)

    def sandboxed(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor that reads nothing but the tables it is given: for SQL from a project file."""
        return self._cursor(sandboxed=True)

    def close(self) -> None:
        with self._lock:
            for con in (self._reader, self._sandboxed):
                if con is not None:
                    con.close()
            self._reader = self._sandboxed = None


def duck(ws: Platform) -> DuckConnections:
    """The workspace's feature-store databases: the same ones for every store and call on it."""
    return ws.shared(KEY, DuckConnections)
