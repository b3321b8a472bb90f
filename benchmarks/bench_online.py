"""Online store: write 100,000 entities x 20 float features, then 5,000 single-entity lookups.

Reports the write time and the lookup latency (p50, the median, and p99) of medops on SQLite
and on Redis (aims: p99 under 1 ms on SQLite, under 2 ms on Redis), through the public path: a
``FeatureStore`` made over a real workspace (``FeatureStore(ws, views, online_store=...)``),
its view's values written through the store it opens (``store.online.write``, the write
``materialize`` makes) and read back by ``store.online.read`` and by the whole serving call,
``get_online_features`` (TTL check, missing flags, the result's columns): the "API" rows.

Baselines from the raw library in the same run and on the same data, each given the same
one-off preparation medops gets (a file or a connection opened, the data in memory):
- sqlite3, default: a plain table (entity PRIMARY KEY, JSON blob, WITHOUT ROWID, WAL), written
  by ``executemany`` in one transaction that first empties it (medops's write replaces its
  generation), read by ``SELECT data ... WHERE entity = ?`` through the module's statement
  cache; fastest documented mode: the same with ``PRAGMA synchronous=OFF`` (SQLite's fastest
  write setting, which gives up durability on power loss; medops keeps ``synchronous=FULL``)
  and memory-mapped reads (``PRAGMA mmap_size``), a compared side of its own;
- Redis, redis-py default: ``MSET`` in batches of 5,000 and one ``GET`` per lookup, its fastest
  documented commands for these; its fastest documented mode is the hiredis reply parser
  (``redis[hiredis]``), which redis-py uses by itself when installed, for medops's store too
  (it talks to Redis through redis-py): the notes say which parser ran.
Each raw lookup also parses the JSON, as medops does. Ratios are medops / raw (1.0 = no
overhead). The sides are interleaved in a rotating order (``common.interleaved``): the writes
over ``--write-rounds`` rounds, the lookups over ``--rounds`` slices of the probes after an
untimed slice each; writes are medians, and the load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import interleaved, load_average, medians, print_table, workspace

REDIS_URL = "redis://127.0.0.1:6379/0"
FEATURES = 20
BATCH = 5_000
WARM_LOOKUPS = 200
AIMS_MS = {"sqlite": 1.0, "redis": 2.0}


def _data(entities: int) -> tuple[list[str], list[datetime | None], list[dict[str, object]]]:
    rng = random.Random(7)
    ids = [f"patient-{i:07d}" for i in range(entities)]
    now = datetime.now(UTC)
    times: list[datetime | None] = [now] * entities
    rows: list[dict[str, object]] = [{f"f{j:02d}": rng.random() * 100 for j in range(FEATURES)} for _ in ids]
    return ids, times, rows


def _feature_store(ws: Any, online_store: str) -> Any:
    """The FeatureStore a user makes over the workspace, with the benchmark's one view."""
    from medops.features import Feature, FeatureSet, FeatureStore, FeatureView

    views = FeatureSet()
    features = tuple(Feature(f"f{j:02d}") for j in range(FEATURES))
    views.add(FeatureView("wide", "patient_id", "bench", features, timestamp="t", ttl=timedelta(days=365)))
    return FeatureStore(ws, views, online_store=online_store)


def _lookups(
    sides: dict[str, Callable[[str], Any]], probes: Sequence[str], rounds: int
) -> dict[str, tuple[float, float]]:
    """p50 and p99 in milliseconds of each side's single-entity lookups: the probes cut into ``rounds``
    slices, every side looking up each slice in turn, the order rotating from round to round, after
    an untimed slice of ``WARM_LOOKUPS`` each."""
    slices = [list(probes[:WARM_LOOKUPS])] + [list(probes[i::rounds]) for i in range(rounds)]
    samples: dict[str, list[float]] = {name: [] for name in sides}
    clock = time.perf_counter

    def side(name: str, lookup: Callable[[str], Any]) -> Callable[[], None]:
        queue = iter(slices)
        out: list[float] = []  # the warm-up slice's, dropped

        def run() -> None:
            nonlocal out
            for entity in next(queue):
                start = clock()
                lookup(entity)
                out.append(clock() - start)
            out = samples[name]

        return run

    interleaved({name: side(name, fn) for name, fn in sides.items()}, rounds)
    result = {}
    for name, values in samples.items():
        values.sort()
        result[name] = values[len(values) // 2] * 1e3, values[min(len(values) - 1, int(len(values) * 0.99))] * 1e3
    return result


def _rows(
    backend: str, n: int, writes: dict[str, float], lookups: dict[str, tuple[float, float]], fastest: str | None
) -> list[list[Any]]:
    aim = AIMS_MS[backend]

    def vs(ours: float, raw: str, part: int | None) -> list[str]:
        if raw not in writes and raw not in lookups:
            return ["", ""]
        base = writes[raw] if part is None else lookups[raw][part]
        unit = f"{base:.2f} s" if part is None else f"{base:.3f} ms"
        return [unit, f"{ours / base:.2f}"]

    rows = [[f"{backend}: write {n:,} x {FEATURES}", f"{writes['medops']:.2f} s", *vs(writes["medops"], "raw", None)]]
    rows[0] += vs(writes["medops"], fastest, None) if fastest else ["", ""]
    rows[0].append("")
    for label, side in (("lookup", "medops"), ("API lookup", "api")):
        for part, name in ((0, "p50"), (1, "p99")):
            ours = lookups[side][part]
            row = [f"{backend}: {label} {name}", f"{ours:.3f} ms", *vs(ours, "raw", part)]
            row += vs(ours, fastest, part) if fastest else ["", ""]
            row.append(f"< {aim:g} ms: {'ok' if ours < aim else 'MISSED'}" if part else "")
            rows.append(row)
    return rows


def run_sqlite(
    ws: Any,
    base: Path,
    data: tuple[list[str], list[datetime | None], list[dict[str, object]]],
    probes: list[str],
    rounds: int,
    write_rounds: int,
) -> list[list[Any]]:
    ids, times, rows = data
    store = _feature_store(ws, "sqlite")
    online = store.online
    connections = {}
    for name, pragmas in (("raw", []), ("fastest", ["PRAGMA synchronous=OFF", "PRAGMA mmap_size=1073741824"])):
        conn = sqlite3.connect(base / f"{name}.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for pragma in pragmas:
            conn.execute(pragma)
        conn.execute("CREATE TABLE raw (entity TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID")
        connections[name] = conn

    def raw_write(conn: sqlite3.Connection) -> Callable[[], None]:
        def run() -> None:
            conn.execute("BEGIN")
            conn.execute("DELETE FROM raw")
            for start in range(0, len(ids), BATCH):
                part = range(start, min(start + BATCH, len(ids)))
                conn.executemany("INSERT INTO raw VALUES (?, ?)", [(ids[i], json.dumps(rows[i])) for i in part])
            conn.execute("COMMIT")

        return run

    version = iter(range(1_000_000))
    try:
        write_times = interleaved(
            {
                "medops": lambda: online.write("wide", f"v{next(version)}", datetime.now(UTC), ids, times, rows),
                "raw": raw_write(connections["raw"]),
                "fastest": raw_write(connections["fastest"]),
            },
            write_rounds,
        )
        sql = "SELECT data FROM raw WHERE entity = ?"

        def raw_read(conn: sqlite3.Connection) -> Callable[[str], Any]:
            return lambda e: json.loads(conn.execute(sql, (e,)).fetchone()[0])

        probe = probes[0]
        expected = raw_read(connections["raw"])(probe)
        assert online.read("wide", [probe])[0].values == expected  # the same values on every side
        assert store.get_online_features({"patient_id": [probe]}, ["wide"]).rows[0]["f00"] == expected["f00"]
        assert raw_read(connections["fastest"])(probe) == expected
        lookups = _lookups(
            {
                "medops": lambda e: online.read("wide", [e]),
                "api": lambda e: store.get_online_features({"patient_id": [e]}, ["wide"]),
                "raw": raw_read(connections["raw"]),
                "fastest": raw_read(connections["fastest"]),
            },
            probes,
            rounds,
        )
    finally:
        store.close()
        for conn in connections.values():
            conn.close()
    return _rows("sqlite", len(ids), medians(write_times), lookups, "fastest")


def run_redis(
    ws: Any,
    data: tuple[list[str], list[datetime | None], list[dict[str, object]]],
    probes: list[str],
    rounds: int,
    write_rounds: int,
) -> list[list[Any]]:
    import redis

    ids, times, rows = data
    namespace = ws.settings.workspace_id  # the store's own prefix; the raw keys go under it too
    client = redis.Redis.from_url(REDIS_URL)
    store = _feature_store(ws, REDIS_URL)
    online = store.online
    prefix = f"medops:{namespace}:raw:"
    version = iter(range(1_000_000))
    try:

        def raw_write() -> None:
            for start in range(0, len(ids), BATCH):
                part = range(start, min(start + BATCH, len(ids)))
                client.mset({prefix + ids[i]: json.dumps(rows[i]) for i in part})

        write_times = interleaved(
            {
                "medops": lambda: online.write("wide", f"v{next(version)}", datetime.now(UTC), ids, times, rows),
                "raw": raw_write,
            },
            write_rounds,
        )

        def raw_read(e: str) -> Any:
            return json.loads(client.get(prefix + e))  # type: ignore[arg-type]

        assert online.read("wide", [probes[0]])[0].values == raw_read(probes[0])
        lookups = _lookups(
            {
                "medops": lambda e: online.read("wide", [e]),
                "api": lambda e: store.get_online_features({"patient_id": [e]}, ["wide"]),
                "raw": raw_read,
            },
            probes,
            rounds,
        )
    finally:
        store.close()
        keys = list(client.scan_iter(match=f"medops:{namespace}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.unlink(*keys[start : start + 10_000])
        client.close()
    return _rows("redis", len(ids), medians(write_times), lookups, None)


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--entities", type=int, default=100_000, help="rows written per store")
    parser.add_argument("--lookups", type=int, default=5_000, help="single-entity lookups timed per store and side")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved slices the lookups are cut into")
    parser.add_argument("--write-rounds", type=int, default=3, help="interleaved writes per side (median reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.entities, args.lookups, args.rounds, args.write_rounds = 10_000, 1_000, 5, 3
    print(f"load average at start: {load_average()}")
    data = _data(args.entities)
    rng = random.Random(11)
    probes = [data[0][rng.randrange(len(data[0]))] for _ in range(args.lookups)]
    out: list[list[Any]] = []
    with workspace("sqlite") as ws:
        if args.backend in ("sqlite", "all"):
            out += run_sqlite(ws, ws.settings.home, data, probes, args.rounds, args.write_rounds)
        if args.backend == "redis" or (args.backend == "all" and _redis_up()):
            out += run_redis(ws, data, probes, args.rounds, args.write_rounds)
        elif args.backend == "all":
            print(f"Redis at {REDIS_URL} is unreachable: skipping the Redis rows")
    print_table(
        f"online store: {args.entities:,} entities x {FEATURES} features, {args.lookups:,} lookups "
        f"({args.rounds} interleaved rounds; writes: median of {args.write_rounds})",
        ["benchmark", "medops", "raw default", "ratio", "raw fastest", "ratio vs fastest", "aim"],
        out,
    )
    from redis.utils import HIREDIS_AVAILABLE

    print(
        "raw default: sqlite3 (WAL, synchronous=FULL, statement cache) / redis-py MSET + GET; raw fastest: sqlite3 "
        "with synchronous=OFF (not durable) and mmap reads. redis-py's fastest documented mode is its hiredis "
        f"parser, used by both medops and raw when installed: {'in use' if HIREDIS_AVAILABLE else 'not installed'}"
    )
    print(f"load average at end: {load_average()}")
    return out


if __name__ == "__main__":
    main()
