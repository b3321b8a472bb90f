"""The embedded online store: one SQLite file in WAL mode (the default, ``online_store = "sqlite"``).

``sqlite`` is ``<home>/online.db``; ``sqlite:///PATH`` names the file (a relative PATH is
relative to home, an absolute one is written ``sqlite:////abs/path.db``). Reads never wait
for a write. A write is one ``BEGIN IMMEDIATE`` transaction that inserts the new
generation, swaps the pointer in ``online_views`` and deletes the old generation; readers
keep their snapshot until it commits (with ``synchronous=FULL``). Tables carry a
``namespace`` column, so two workspaces can share one file.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from medops.errors import ConfigError, DatabaseBusy, StoreError
from medops.features.online import base
from medops.features.online.base import (
    Encoder,
    OnlineRow,
    Progress,
    check_read_args,
    dumps,
    loads,
    not_found,
    parse_time,
    prepare_write,
    select_features,
)
from medops.private_files import create_private_file, make_private_dir

READ_CHUNK = 500
"""Entity ids per SQLite ``IN (...)`` statement (well under SQLite's bound-parameter limit)."""
DEFAULT_FILE = "online.db"


def open_store(url: str, *, home: Path, namespace: str) -> SqliteOnlineStore:
    """``sqlite`` (the workspace's own file) or ``sqlite:///PATH``."""
    if url == "sqlite":
        return SqliteOnlineStore(home / DEFAULT_FILE, namespace)
    raw = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    if not raw:
        raise ConfigError(f"online store URL {url!r} names no file", hint="use sqlite:////abs/path/online.db")
    path = Path(raw)
    return SqliteOnlineStore(path if path.is_absolute() else home / path, namespace)


def check(url: str) -> str:
    """Nothing to reach: the file is opened (and made) by the first use."""
    return "embedded SQLite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_views (
    namespace TEXT NOT NULL,
    view TEXT NOT NULL,
    version TEXT NOT NULL,
    as_of TEXT NOT NULL,
    rows INTEGER NOT NULL,
    features TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (namespace, view)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_rows (
    namespace TEXT NOT NULL,
    view TEXT NOT NULL,
    generation INTEGER NOT NULL,
    entity TEXT NOT NULL,
    event_time TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (namespace, view, generation, entity)
) WITHOUT ROWID;
"""
_META_SQL = "SELECT generation, features, NULL, NULL, NULL FROM online_views WHERE namespace = ? AND view = ?"


@functools.lru_cache(maxsize=64)
def _read_sql(n: int) -> str:
    """The pointer joined to the rows of ``n`` ids: one statement, so one consistent snapshot.

    Parameters: the n ids, then namespace and view. No row back means no such view; a row
    with a NULL entity means the view exists but none of the ids has a row.
    """
    cond = "r.entity = ?" if n == 1 else f"r.entity IN ({','.join('?' * n)})"
    return (
        "SELECT v.generation, v.features, r.entity, r.event_time, r.data FROM online_views v"
        " LEFT JOIN online_rows r ON r.namespace = v.namespace AND r.view = v.view"
        f" AND r.generation = v.generation AND {cond} WHERE v.namespace = ? AND v.view = ?"
    )


class SqliteOnlineStore:
    """The embedded online store: one SQLite file in WAL mode.

    Reads share one connection (opened on first use, guarded by a lock, usable from any
    thread); each write opens its own, so reads never queue behind a long write.
    """

    def __init__(self, path: Path, namespace: str, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.namespace = namespace
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # view -> (generation, features in order, the same as a set)
        self._meta_cache: dict[str, tuple[int, tuple[str, ...], frozenset[str]]] = {}

    # -- connections

    def _connect(self) -> sqlite3.Connection:
        try:
            make_private_dir(self.path.parent)
            create_private_file(self.path)  # feature values per patient: owner only, -wal and -shm too
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # one fsync per materialization; reads don't pay it
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"online store {self.path} can't be opened: {exc}") from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise DatabaseBusy(
                    f"online store {self.path} stayed locked by another writer for {self.busy_timeout:.0f} s",
                    hint="wait for the other materialization to finish, then retry",
                ) from exc
            raise StoreError(f"online store {self.path} failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"online store {self.path} failed: {exc}") from exc

    # -- write

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
        """Insert a new generation and move the pointer in one transaction, then drop older ones."""
        prep = prepare_write(view, version, as_of, entity_ids, event_times, rows)
        ns = self.namespace
        conn = self._connect()
        try:
            with self._errors():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (latest,) = conn.execute(
                        "SELECT max(g) FROM (SELECT max(generation) AS g FROM online_rows"
                        " WHERE namespace = ? AND view = ? UNION ALL SELECT generation FROM online_views"
                        " WHERE namespace = ? AND view = ?)",
                        (ns, view, ns, view),
                    ).fetchone()
                    gen = (latest or 0) + 1
                    enc = Encoder(view)
                    for start in range(0, prep.count, base.BATCH):
                        stop = min(start + base.BATCH, prep.count)
                        batch = [
                            (ns, view, gen, entity_ids[i], enc.event_time(event_times[i]), enc.values(rows[i]))
                            for i in range(start, stop)
                        ]
                        conn.executemany("INSERT INTO online_rows VALUES (?, ?, ?, ?, ?, ?)", batch)
                        if progress is not None:
                            progress(stop)
                    conn.execute(
                        "INSERT INTO online_views (namespace, view, version, as_of, rows, features, generation)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, view) DO UPDATE SET"
                        " version = excluded.version, as_of = excluded.as_of, rows = excluded.rows,"
                        " features = excluded.features, generation = excluded.generation",
                        (ns, view, version, prep.as_of, prep.count, dumps(list(enc.features)), gen),
                    )
                    # Same transaction: readers (WAL snapshots) keep the old rows until the commit.
                    conn.execute(
                        "DELETE FROM online_rows WHERE namespace = ? AND view = ? AND generation <> ?", (ns, view, gen)
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        finally:
            conn.close()
        return prep.count

    # -- read

    def _fetch(self, view: str, entity_ids: Sequence[str]) -> list[tuple[Any, ...]]:
        ns = self.namespace
        with self._lock:
            try:
                conn = self._reader()
                if not entity_ids:
                    return conn.execute(_META_SQL, (ns, view)).fetchall()
                if len(entity_ids) <= READ_CHUNK:
                    return conn.execute(_read_sql(len(entity_ids)), (*entity_ids, ns, view)).fetchall()
                ids = list(dict.fromkeys(entity_ids))
                result: list[tuple[Any, ...]] = []
                conn.execute("BEGIN")  # several statements: one read transaction keeps them consistent
                try:
                    for start in range(0, len(ids), READ_CHUNK):
                        chunk = ids[start : start + READ_CHUNK]
                        result += conn.execute(_read_sql(len(chunk)), (*chunk, ns, view)).fetchall()
                finally:
                    conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(f"online store {self.path} failed: {exc}") from exc

    def read(self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> list[OnlineRow]:
        """One SELECT (pointer joined to rows) per call; one transaction when ids need several."""
        check_read_args(view, entity_ids, features)
        result = self._fetch(view, entity_ids)
        if not result:
            raise not_found(view)
        gen = result[0][0]
        cached = self._meta_cache.get(view)
        if cached is None or cached[0] != gen:
            names = tuple(loads(result[0][1]))
            cached = (gen, names, frozenset(names))
            self._meta_cache[view] = cached
        selected = select_features(view, cached[1], cached[2], features)
        if len(entity_ids) == 1:
            entity, t, data = result[0][2:]
            if entity is None:
                return [OnlineRow(dict.fromkeys(selected), None, False)]
            values = loads(data)
            return [OnlineRow({n: values.get(n) for n in selected}, parse_time(t), True)]
        found = {r[2]: r for r in result if r[2] is not None}
        out: list[OnlineRow] = []
        for entity in entity_ids:
            hit = found.get(entity)
            if hit is None:
                out.append(OnlineRow(dict.fromkeys(selected), None, False))
            else:
                values = loads(hit[4])
                out.append(OnlineRow({n: values.get(n) for n in selected}, parse_time(hit[3]), True))
        return out

    def info(self, view: str) -> dict[str, object] | None:
        with self._lock, self._errors():
            row = (
                self._reader()
                .execute(
                    "SELECT version, as_of, rows, features FROM online_views WHERE namespace = ? AND view = ?",
                    (self.namespace, view),
                )
                .fetchone()
            )
        if row is None:
            return None
        version, as_of, count, raw = row
        return {"view": view, "version": version, "as_of": as_of, "rows": count, "features": loads(raw)}

    def views(self) -> list[str]:
        with self._lock, self._errors():
            rows = (
                self._reader()
                .execute("SELECT view FROM online_views WHERE namespace = ? ORDER BY view", (self.namespace,))
                .fetchall()
            )
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
