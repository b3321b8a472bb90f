"""Online store: write 100,000 entities x 20 float features, then 5,000 single-entity lookups.

Reports the write time and the lookup latency (p50, p99) of medops on SQLite and on Redis
(aims: p99 under 1 ms on SQLite, under 2 ms on Redis). Baselines from the raw library in
the same run and on the same data: a plain sqlite3 table (entity PRIMARY KEY, JSON blob)
read by ``SELECT data ... WHERE entity = ?``, and plain Redis keys read by ``GET``; each
raw lookup also parses the JSON, as medops does. Ratios are medops / raw (1.0 = no overhead).
The "API" rows time the whole serving call, ``FeatureStore.get_online_features`` (TTL
check, missing flags, the result's columns), over the same store.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir, timed

REDIS_URL = "redis://127.0.0.1:6379/0"
FEATURES = 20
BATCH = 5_000
AIMS_MS = {"sqlite": 1.0, "redis": 2.0}


def _data(entities: int) -> tuple[list[str], list[datetime | None], list[dict[str, object]]]:
    rng = random.Random(7)
    ids = [f"patient-{i:07d}" for i in range(entities)]
    now = datetime.now(UTC)
    times: list[datetime | None] = [now] * entities
    rows: list[dict[str, object]] = [{f"f{j:02d}": rng.random() * 100 for j in range(FEATURES)} for _ in ids]
    return ids, times, rows


def _latencies(lookup: Callable[[str], Any], ids: Sequence[str]) -> tuple[float, float]:
    """p50 and p99 in milliseconds over ``ids``, after a short warm-up."""
    for entity in ids[:200]:
        lookup(entity)
    samples = []
    clock = time.perf_counter
    for entity in ids:
        start = clock()
        lookup(entity)
        samples.append(clock() - start)
    samples.sort()
    return samples[len(samples) // 2] * 1e3, samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3


def _api(store: Any) -> Callable[[str], Any]:
    """The serving call over ``store``: a FeatureStore whose only view is the benchmark's table."""
    from datetime import timedelta
    from types import SimpleNamespace

    from medops.features import Feature, FeatureSet, FeatureStore, FeatureView

    views = FeatureSet()
    features = tuple(Feature(f"f{j:02d}") for j in range(FEATURES))
    views.add(FeatureView("wide", "patient_id", "bench", features, timestamp="t", ttl=timedelta(days=365)))
    settings = SimpleNamespace(executor="local", online_store="sqlite", home=Path.cwd(), workspace_id="bench")
    fs = FeatureStore(SimpleNamespace(settings=settings), views)  # type: ignore[arg-type]
    fs._online = store  # the store under test, not one opened from settings
    return lambda e: fs.get_online_features({"patient_id": [e]}, ["wide"])


def _rows(
    backend: str,
    n: int,
    write: tuple[float, float],
    med: tuple[float, float],
    raw: tuple[float, float],
    api: tuple[float, float],
) -> list[list[Any]]:
    aim = AIMS_MS[backend]
    return [
        [
            f"{backend}: write {n:,} x {FEATURES}",
            f"{write[0]:.2f} s",
            f"{write[1]:.2f} s",
            f"{write[0] / write[1]:.2f}",
            "",
        ],
        [f"{backend}: lookup p50", f"{med[0]:.3f} ms", f"{raw[0]:.3f} ms", f"{med[0] / raw[0]:.2f}", ""],
        [
            f"{backend}: lookup p99",
            f"{med[1]:.3f} ms",
            f"{raw[1]:.3f} ms",
            f"{med[1] / raw[1]:.2f}",
            f"< {aim:g} ms: {'ok' if med[1] < aim else 'MISSED'}",
        ],
        [f"{backend}: API lookup p50", f"{api[0]:.3f} ms", f"{raw[0]:.3f} ms", f"{api[0] / raw[0]:.2f}", ""],
        [
            f"{backend}: API lookup p99",
            f"{api[1]:.3f} ms",
            f"{raw[1]:.3f} ms",
            f"{api[1] / raw[1]:.2f}",
            f"< {aim:g} ms: {'ok' if api[1] < aim else 'MISSED'}",
        ],
    ]


def run_sqlite(
    ids: list[str], times: list[datetime | None], rows: list[dict[str, object]], probes: list[str]
) -> list[list[Any]]:
    from medops.features.online import open_online_store

    with temp_dir("medops-bench-online-") as base:
        store = open_online_store("sqlite", home=base, namespace="bench")
        t_write, _ = timed(lambda: store.write("wide", "v1", datetime.now(UTC), ids, times, rows))
        med = _latencies(lambda e: store.read("wide", [e]), probes)
        api = _latencies(_api(store), probes)
        store.close()

        conn = sqlite3.connect(base / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE raw (entity TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID")

        def raw_write() -> None:
            conn.execute("BEGIN")
            for start in range(0, len(ids), BATCH):
                part = range(start, min(start + BATCH, len(ids)))
                conn.executemany("INSERT INTO raw VALUES (?, ?)", [(ids[i], json.dumps(rows[i])) for i in part])
            conn.execute("COMMIT")

        t_raw, _ = timed(raw_write)
        sql = "SELECT data FROM raw WHERE entity = ?"
        raw = _latencies(lambda e: json.loads(conn.execute(sql, (e,)).fetchone()[0]), probes)
        conn.close()
    return _rows("sqlite", len(ids), (t_write, t_raw), med, raw, api)


def run_redis(
    ids: list[str], times: list[datetime | None], rows: list[dict[str, object]], probes: list[str]
) -> list[list[Any]]:
    import redis

    from medops.features.online import open_online_store

    namespace = f"bench-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)
    store = open_online_store(REDIS_URL, home=Path.cwd(), namespace=namespace)
    try:
        t_write, _ = timed(lambda: store.write("wide", "v1", datetime.now(UTC), ids, times, rows))
        med = _latencies(lambda e: store.read("wide", [e]), probes)
        api = _latencies(_api(store), probes)
        prefix = f"medops:{namespace}:raw:"

        def raw_write() -> None:
            for start in range(0, len(ids), BATCH):
                part = range(start, min(start + BATCH, len(ids)))
                client.mset({prefix + ids[i]: json.dumps(rows[i]) for i in part})

        t_raw, _ = timed(raw_write)
        raw = _latencies(lambda e: json.loads(client.get(prefix + e)), probes)  # type: ignore[arg-type]
    finally:
        store.close()
        keys = list(client.scan_iter(match=f"medops:{namespace}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.unlink(*keys[start : start + 10_000])
        client.close()
    return _rows("redis", len(ids), (t_write, t_raw), med, raw, api)


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--entities", type=int, default=100_000, help="rows written per store")
    parser.add_argument("--lookups", type=int, default=5_000, help="single-entity lookups timed per store")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.entities, args.lookups = 10_000, 1_000
    ids, times, rows = _data(args.entities)
    rng = random.Random(11)
    probes = [ids[rng.randrange(len(ids))] for _ in range(args.lookups)]
    out: list[list[Any]] = []
    if args.backend in ("sqlite", "all"):
        out += run_sqlite(ids, times, rows, probes)
    if args.backend == "redis" or (args.backend == "all" and _redis_up()):
        out += run_redis(ids, times, rows, probes)
    elif args.backend == "all":
        print(f"Redis at {REDIS_URL} is unreachable: skipping the Redis rows")
    print_table(
        f"online store: {args.entities:,} entities x {FEATURES} features, {args.lookups:,} lookups",
        ["benchmark", "medops", "raw (sqlite3 / redis-py)", "ratio", "aim"],
        out,
    )
    return out


if __name__ == "__main__":
    main()
