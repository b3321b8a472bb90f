"""The online feature store: the latest feature values per entity, for low-latency lookups.

A materialization replaces a view's whole online table. Each write builds a new
*generation* of the table next to the current one and then moves the view's pointer to it
in one atomic step, so readers see the old table or the new one, never a mix, and a write
that fails or is killed half-way leaves the old table as it was. Older generations are
deleted with the switch (SQLite) or right after it (Redis; swept by the next write if
a crash interrupted that).

Backends, chosen by URL (``open_online_store``):

``sqlite`` / ``sqlite:///PATH``
    One file (default ``<home>/online.db``; a relative PATH is relative to home, an
    absolute one is written ``sqlite:////abs/path.db``). WAL mode, so reads never wait for
    a write. A write is one ``BEGIN IMMEDIATE`` transaction that inserts the new
    generation, swaps the pointer in ``online_views`` and deletes the old generation;
    readers keep their snapshot until it commits (with ``synchronous=FULL``). Tables carry
    a ``namespace`` column, so two workspaces can share one file.
``redis://host:port[/db]`` (or ``rediss://``)
    Rows are keys ``medops:{namespace}:online:{view}:g{generation}:{entity}`` holding
    ``{"t": event time or null, "v": {feature: value}}``; the pointer is the hash
    ``medops:{namespace}:online:{view}:meta`` (version, as_of, rows, features,
    generation), switched by a compare-and-set script only if no newer write finished
    first (else the older write is discarded with Conflict);
    ``medops:{namespace}:online:views`` lists the views. A read is one Lua script
    (one round trip) that reads the pointer and the rows together, so it is consistent.

Values are stored as JSON: str, int, float, bool and None as they are; NaN and
infinities become None (missing); an aware datetime becomes ISO 8601 UTC text
(``2026-11-24T13:05:00.000000Z``), a naive datetime, a date or a time its
``isoformat()`` text; Decimal becomes float; NumPy scalars become the Python value. Any
other type is refused with InvalidInput, and the write changes nothing. Reads return the
JSON values (so a datetime feature comes back as text). Event times are stored as ISO
8601 UTC text and returned as aware UTC datetimes.

Error messages never quote an entity id or a value: ids may be patient pseudonyms.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from medops.clock import to_iso
from medops.config import redact_url
from medops.errors import ConfigError, Conflict, DatabaseBusy, InvalidInput, NotFound, StoreError

if TYPE_CHECKING:
    import redis

BATCH = 5_000
"""Rows per executemany / Redis pipeline: big enough to amortize calls, small enough to bound memory."""
READ_CHUNK = 500
"""Entity ids per SQLite ``IN (...)`` statement (well under SQLite's bound-parameter limit)."""
DEFAULT_FILE = "online.db"

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


def open_online_store(url: str, *, home: Path, namespace: str) -> OnlineStore:
    """Open the online store named by ``url``; nothing connects until the first call.

    ``namespace`` (the workspace id) prefixes every key and row, so workspaces sharing a
    Redis or a SQLite file never see each other's tables.
    """
    _check_name("namespace", namespace, ConfigError)
    if url == "sqlite":
        return SqliteOnlineStore(home / DEFAULT_FILE, namespace)
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///") :]
        if not raw:
            raise ConfigError(f"online store URL {url!r} names no file", hint="use sqlite:////abs/path/online.db")
        path = Path(raw)
        return SqliteOnlineStore(path if path.is_absolute() else home / path, namespace)
    if url.startswith(("redis://", "rediss://")):
        return RedisOnlineStore(url, namespace)
    raise ConfigError(
        f"online store {redact_url(url)!r} is not known",
        hint="use sqlite, sqlite:////path/online.db or redis://host:6379/0",
    )


# ---------------------------------------------------------------------------- shared checks


def _check_name(what: str, name: object, error: type[InvalidInput] | type[ConfigError] = InvalidInput) -> str:
    """View names and namespaces become parts of keys: only letters, digits, '.', '_', '-'."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise error(
            f"{what} {name!r} is not a valid name",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _not_found(view: str) -> NotFound:
    return NotFound(
        f"feature view {view!r} has no online table",
        code="online_not_materialized",
        view=view,
    )


def _check_read_args(view: str, entity_ids: Sequence[str], features: Sequence[str] | None) -> None:
    if not isinstance(view, str) or not _NAME.match(view):
        raise _not_found(str(view))
    if isinstance(entity_ids, str):
        raise InvalidInput("entity_ids must be a sequence of ids, not one string", hint="pass [entity_id]")
    if not _STR.issuperset(map(type, entity_ids)):
        raise InvalidInput("entity ids must be strings")
    if isinstance(features, str):
        raise InvalidInput("features must be a sequence of names, not one string", hint="pass [feature]")


def _select_features(
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
class _Prepared:
    """Validated write arguments: the ISO as_of and the row count."""

    as_of: str
    count: int


def _prepare_write(
    view: str,
    version: str,
    as_of: datetime,
    entity_ids: Sequence[str],
    event_times: Sequence[datetime | None],
    rows: Sequence[Mapping[str, object]],
) -> _Prepared:
    """Check everything that can be checked before touching the store."""
    _check_name("feature view", view)
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
    return _Prepared(as_of_iso, n)


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


class _Encoder:
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
                return _dumps(row)
            except ValueError:
                pass  # NaN or an infinity
        return _dumps({name: _convert(self.view, name, value) for name, value in row.items()})

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


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.loads


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# ---------------------------------------------------------------------------- SQLite

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
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
        prep = _prepare_write(view, version, as_of, entity_ids, event_times, rows)
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
                    enc = _Encoder(view)
                    for start in range(0, prep.count, BATCH):
                        stop = min(start + BATCH, prep.count)
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
                        (ns, view, version, prep.as_of, prep.count, _dumps(list(enc.features)), gen),
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
        _check_read_args(view, entity_ids, features)
        result = self._fetch(view, entity_ids)
        if not result:
            raise _not_found(view)
        gen = result[0][0]
        cached = self._meta_cache.get(view)
        if cached is None or cached[0] != gen:
            names = tuple(_loads(result[0][1]))
            cached = (gen, names, frozenset(names))
            self._meta_cache[view] = cached
        selected = _select_features(view, cached[1], cached[2], features)
        if len(entity_ids) == 1:
            entity, t, data = result[0][2:]
            if entity is None:
                return [OnlineRow(dict.fromkeys(selected), None, False)]
            values = _loads(data)
            return [OnlineRow({n: values.get(n) for n in selected}, _parse_time(t), True)]
        found = {r[2]: r for r in result if r[2] is not None}
        out: list[OnlineRow] = []
        for entity in entity_ids:
            hit = found.get(entity)
            if hit is None:
                out.append(OnlineRow(dict.fromkeys(selected), None, False))
            else:
                values = _loads(hit[4])
                out.append(OnlineRow({n: values.get(n) for n in selected}, _parse_time(hit[3]), True))
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
        return {"view": view, "version": version, "as_of": as_of, "rows": count, "features": _loads(raw)}

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


# ---------------------------------------------------------------------------- Redis

# KEYS[1] meta hash; ARGV[1] row key prefix up to ':g'; ARGV[2..] entity ids.
# Returns nil (no table) or {generation, features, value-or-nil per id}. One script, so the
# pointer and the rows come from the same moment. Keys are built inside the script, which
# standalone Redis allows (a cluster would not; medops does not support Redis Cluster).
_READ_LUA = """
local m = redis.call('HMGET', KEYS[1], 'generation', 'features')
if not m[1] then return false end
local base = ARGV[1] .. m[1] .. ':'
local out = {m[1], m[2]}
local i = 2
while i <= #ARGV do
  local keys = {}
  local j = i
  while j <= #ARGV and j < i + 1000 do
    keys[#keys + 1] = base .. ARGV[j]
    j = j + 1
  end
  local vals = redis.call('MGET', unpack(keys))
  for k = 1, #keys do out[#out + 1] = vals[k] end
  i = j
end
return out
"""

# KEYS[1] meta hash, KEYS[2] views set; ARGV generation, version, as_of, rows, features, view.
# Switches the pointer unless a newer generation is already live; returns 1 or 0.
_SWAP_LUA = """
local cur = redis.call('HGET', KEYS[1], 'generation')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'version', ARGV[2], 'as_of', ARGV[3],
           'rows', ARGV[4], 'features', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
return 1
"""


class RedisOnlineStore:
    """The shared online store on Redis; thread-safe (redis-py pools its connections)."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        parsed = urlparse(url)
        self.where = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"
        self.namespace = namespace
        self._base = f"medops:{namespace}:online"
        try:
            self.client: redis.Redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
        except ValueError as exc:
            raise ConfigError(f"online store URL {redact_url(url)!r} can't be used: {exc}") from exc
        self._redis_error = redis.RedisError
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)
        self._read_script = self.client.register_script(_READ_LUA)
        self._swap_script = self.client.register_script(_SWAP_LUA)
        self._features_cache: dict[tuple[str, bytes], tuple[tuple[str, ...], frozenset[str]]] = {}

    def _meta_key(self, view: str) -> str:
        return f"{self._base}:{view}:meta"

    def _rows_prefix(self, view: str) -> str:
        return f"{self._base}:{view}:g"

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, self._unreachable):
            return StoreError(f"Redis at {self.where} is unreachable: {exc}", hint="start Redis or fix online_store")
        return StoreError(f"Redis at {self.where} refused the request: {exc}")

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
        """Write generation g+1 beside the live one, switch the meta hash, then unlink older keys."""
        prep = _prepare_write(view, version, as_of, entity_ids, event_times, rows)
        meta = self._meta_key(view)
        try:
            gen = int(self.client.incr(f"{self._base}:{view}:seq"))
        except self._redis_error as exc:
            raise self._error(exc) from exc
        prefix = f"{self._rows_prefix(view)}{gen}:"
        written = 0
        enc = _Encoder(view)
        try:
            for start in range(0, prep.count, BATCH):
                stop = min(start + BATCH, prep.count)
                batch: dict[str, str] = {}
                for i in range(start, stop):
                    t = enc.event_time(event_times[i])
                    batch[prefix + entity_ids[i]] = (
                        f'{{"t":{"null" if t is None else _dumps(t)},"v":{enc.values(rows[i])}}}'
                    )
                written = stop  # before the call: a call that timed out may still have stored the batch
                self.client.mset(batch)
                if progress is not None:
                    progress(stop)
            swapped = self._swap_script(
                keys=[meta, f"{self._base}:views"],
                args=[gen, version, prep.as_of, prep.count, _dumps(list(enc.features)), view],
            )
        except BaseException as exc:
            self._unlink_quietly([prefix + e for e in entity_ids[:written]])
            if isinstance(exc, self._redis_error):
                raise self._error(exc) from exc
            raise
        if not swapped:
            self._unlink_quietly([prefix + e for e in entity_ids])
            raise Conflict(
                f"a newer write of feature view {view!r} finished while this one ran; this one was discarded",
                code="online_stale",
                view=view,
            )
        self._sweep(view, gen)
        return prep.count

    def _unlink_quietly(self, keys: list[str]) -> None:
        """Best effort: leftovers of a failed write are swept by the next successful one."""
        try:
            for start in range(0, len(keys), BATCH):
                self.client.unlink(*keys[start : start + BATCH])
        except self._redis_error:
            pass

    def _sweep(self, view: str, gen: int) -> None:
        """Unlink every generation older than ``gen``; newer ones belong to writes still running."""
        prefix = self._rows_prefix(view).encode()
        cut = len(prefix)
        doomed: list[bytes] = []
        try:
            for key in self.client.scan_iter(match=prefix + b"*", count=5_000):
                digits = key[cut : key.index(b":", cut)]
                if digits.isdigit() and int(digits) < gen:
                    doomed.append(key)
                    if len(doomed) >= BATCH:
                        self.client.unlink(*doomed)
                        doomed.clear()
            if doomed:
                self.client.unlink(*doomed)
        except self._redis_error:
            pass  # the table is live already; the next write sweeps what is left

    # -- read

    def read(self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> list[OnlineRow]:
        """One round trip: a script reads the pointer and the rows together."""
        _check_read_args(view, entity_ids, features)
        try:
            result: Any = self._read_script(keys=[self._meta_key(view)], args=[self._rows_prefix(view), *entity_ids])
        except self._redis_error as exc:
            raise self._error(exc) from exc
        if not result:
            raise _not_found(view)
        gen, raw_features = result[0], result[1]
        cached = self._features_cache.get((view, gen))
        if cached is None:
            names = tuple(_loads(raw_features))
            cached = (names, frozenset(names))
            self._features_cache = {k: v for k, v in self._features_cache.items() if k[0] != view}
            self._features_cache[(view, gen)] = cached
        selected = _select_features(view, cached[0], cached[1], features)
        out: list[OnlineRow] = []
        for raw in result[2:]:
            if raw is None:
                out.append(OnlineRow(dict.fromkeys(selected), None, False))
            else:
                doc = _loads(raw)
                data = doc["v"]
                out.append(OnlineRow({n: data.get(n) for n in selected}, _parse_time(doc["t"]), True))
        return out

    def info(self, view: str) -> dict[str, object] | None:
        try:
            meta: dict[bytes, bytes] = self.client.hgetall(self._meta_key(view))  # type: ignore[assignment]
        except self._redis_error as exc:
            raise self._error(exc) from exc
        if b"generation" not in meta:
            return None
        return {
            "view": view,
            "version": meta[b"version"].decode(),
            "as_of": meta[b"as_of"].decode(),
            "rows": int(meta[b"rows"]),
            "features": _loads(meta[b"features"]),
        }

    def views(self) -> list[str]:
        try:
            members: set[bytes] = self.client.smembers(f"{self._base}:views")  # type: ignore[assignment]
        except self._redis_error as exc:
            raise self._error(exc) from exc
        return sorted(m.decode() for m in members)

    def close(self) -> None:
        self.client.close()


__all__ = ["OnlineRow", "OnlineStore", "RedisOnlineStore", "SqliteOnlineStore", "open_online_store"]
