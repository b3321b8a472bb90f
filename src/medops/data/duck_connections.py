"""A workspace's DuckDB databases: opened once per workspace, a cursor per use.

Opening a DuckDB database costs about 12 ms (its buffer pool, catalog and extensions) and
gives it a thread pool and a memory limit of its own; a cursor on an open one costs
microseconds and shares both. So a workspace holds two in-memory databases, each opened
on first use and closed with the workspace, and every use takes a cursor of its own: a
DuckDB connection must not be shared across threads, its cursors may. Ingest (contract,
de-identification, profile), the feature store, monitoring and serving all draw on them,
so a process's DuckDB work stays within one memory limit and one pool of threads.

Two, not one, because the sandbox (no file or network access) can't be lifted from a
database once set:

- ``sandboxed`` runs SQL written in a project file (view expressions and filters,
  on-demand features, contract rules): it computes over the Arrow tables it is given and
  reads nothing.
- ``reader`` reads verified artifacts by path with DuckDB's own Parquet reader, and holds
  the working files that may outgrow memory (``attach``). Its SQL is built by medops from
  checked names, quoted: no text from a project file.

Code that runs without a workspace (a Dask worker's task) opens a ``DuckConnections`` of
its own and closes it.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb

from medops.data.duck import connect, discard, sandbox
from medops.platform import Platform

KEY = "duckdb"


class Attached:
    """A DuckDB file attached to the reader database, and a cursor whose tables live in it.

    For working tables that may outgrow memory (the keys an ingest has seen, its people per
    group): their pages spill to the file within the workspace's one memory limit. Without a
    path, the database is in memory (for tables known to stay small). ``close`` detaches it and
    removes the file."""

    def __init__(self, owner: DuckConnections, path: Path | None) -> None:
        self.path = path
        self.alias = f"medops_{secrets.token_hex(6)}"
        self.con = owner.cursor()
        try:
            self.con.execute(f"ATTACH '{_literal(path) if path else ':memory:'}' AS {self.alias}")
            self.con.execute(f"USE {self.alias}")
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        """Detach and remove the file; when the workspace closed its databases first (an ingest cut
        short), there is nothing left to detach, and the file still goes."""
        with contextlib.suppress(duckdb.Error):
            self.con.execute("USE memory")
            self.con.execute(f"DETACH {self.alias}")
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        discard(database=self.path)


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
        # cursor works in UTC as a fresh medops connection does (they inherit the progress bar's).
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        if sandboxed:
            sandbox(con)
        self.opened += 1
        return con

    def cursor(self, *, sandboxed: bool = False) -> duckdb.DuckDBPyConnection:
        """A cursor of one of the two databases (opened on first use): for a caller that keeps
        one across calls, from one thread at a time, and closes it."""
        with self._lock:
            if sandboxed and self._sandboxed is None:
                self._sandboxed = self._open(sandboxed=True)
            if not sandboxed and self._reader is None:
                self._reader = self._open(sandboxed=False)
            database = self._sandboxed if sandboxed else self._reader
            assert database is not None
            return database.cursor()

    @contextmanager
    def _cursor(self, *, sandboxed: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self.cursor(sandboxed=sandboxed)
        try:
            yield cursor
        finally:
            cursor.close()

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor that may read files, closed after the call: for SQL medops writes over verified artifacts."""
        return self._cursor(sandboxed=False)

    def sandboxed(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A cursor that reads nothing but the tables it is given: for SQL from a project file."""
        return self._cursor(sandboxed=True)

    def attach(self, path: Path | None) -> Attached:
        """``path`` (a new DuckDB file; None: in memory) attached to the reader, with a cursor of its own."""
        return Attached(self, path)

    def close(self) -> None:
        with self._lock:
            for con in (self._reader, self._sandboxed):
                if con is not None:
                    con.close()
            self._reader = self._sandboxed = None


@contextmanager
def given_or_own(databases: DuckConnections | None) -> Iterator[DuckConnections]:
    """The workspace's databases when given; else a pair of the call's own (a worker's task), closed after it."""
    if databases is not None:
        yield databases
        return
    own = DuckConnections()
    try:
        yield own
    finally:
        own.close()


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def duck(ws: Platform) -> DuckConnections:
    """The workspace's databases: the same ones for every caller on it, closed with it."""
    return ws.shared(KEY, DuckConnections)
