"""Feature store, offline: a point-in-time training set of 1,000,000 label rows over 5,000,000
feature events (100,000 entities, 10 float features, ~3 years of event times, TTL 365 days).

medops is timed on the path a user calls: ``FeatureStore.training_table`` (what
``get_training_set`` and the CLI's training-set command run) over the view's applied
feature table, in a workspace whose events were ingested as a dataset. Applying the view
(sorting the events by entity and time, flagging the row each time resolves to, writing
the Parquet table) is a one-off preparation, timed apart. The call includes everything it
does each time: resolving the view's version in the metadata store, checking the table
against its digest (hashed on the first call in a process, remembered per file after;
the first call is shown apart), the join through DuckDB, and the columns put beside the
labels.

The peer is DuckDB's ASOF LEFT JOIN as one would write it by hand (TTL as a CASE, the
label order restored, the same thread count), in three modes:
- default: over the raw events' Parquet file, read inside the timed region;
- prepared: over a Parquet file given the same one-off preparation medops gets (events
  sorted by entity and time, one row per entity and time), timed apart;
- native table, prepared (DuckDB's fastest documented mode: data loaded into its own
  storage rather than read from Parquet): the prepared rows in an in-memory DuckDB table
  loaded once, outside the timed region.
All sides must give the same values on every row (NaN-aware). Sides run interleaved (each
round runs every side once, the order rotating), after one untimed warm-up run of each;
medians are reported.

Aim: the training set at least as fast as DuckDB's default ASOF join over the same raw
events (speed = DuckDB seconds / medops seconds >= 1.0). Extra rows: the backfill guard (a
view with a ``created`` column, ~5% of events known a few days late; values checked by
brute force on a sample of labels), and with ``--dask`` the same training set on
``dask-local``.
"""

from __future__ import annotations

import argparse
import gc
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import interleaved, load_average, medians, print_table, temp_dir, timed

FEATURES = [f"f{i}" for i in range(10)]
ENTITY = "patient_id"
TTL_DAYS = 365
DAY_US = 86_400 * 1_000_000
SPAN_US = 3 * 365 * DAY_US
START = np.datetime64("2022-01-01T00:00:00", "us")
NULL_SHARE = 0.01  # of each feature's values
LATE_SHARE = 0.05  # of events, known (created) 1-5 days after their event time
NO_EVENTS_SHARE = 0.05  # of label entities that have no events at all
EARLY_EVERY = 20  # every 20th entity has all its events in the first 180 days, so the TTL bites later
EARLY_US = 180 * DAY_US
AIM = 1.0  # DuckDB default seconds / medops seconds
TS = pa.timestamp("us", tz="UTC")


# --- data ------------------------------------------------------------------------------


def _ids(n: int) -> pa.Array:
    return pa.array([f"p{i:07d}" for i in range(n)], pa.string())


def make_events(rows: int, entities: int, seed: int = 1) -> pa.Table:
    """Events in random (ingest) order: entity, event time, created time, 10 features with ~1% nulls.

    Event times are uniform over ~3 years, except for every 20th entity, whose events all fall
    in the first 180 days: labels of those entities a year later find only values past the TTL."""
    rng = np.random.default_rng(seed)
    ent = rng.integers(0, entities, rows)
    offsets = rng.integers(0, SPAN_US, rows)
    early = ent % EARLY_EVERY == 0
    offsets[early] %= EARLY_US
    late = rng.random(rows) < LATE_SHARE
    delay = np.where(late, rng.integers(DAY_US, 5 * DAY_US, rows), 0)
    columns: dict[str, Any] = {
        ENTITY: _ids(entities).take(pa.array(ent)),
        "ts": pa.array(START + offsets.astype("timedelta64[us]"), TS),
        "created": pa.array(START + (offsets + delay).astype("timedelta64[us]"), TS),
    }
    for name in FEATURES:
        values = rng.normal(50.0, 15.0, rows)
        columns[name] = pa.array(values, pa.float64(), mask=rng.random(rows) < NULL_SHARE)
    return pa.table(columns)


def make_labels(rows: int, entities: int, events: pa.Table, seed: int = 2) -> pa.Table:
    """``_row``, ``event_timestamp`` and the entity: random entities (~5% without events) and
    times over the same range, with ~2% duplicated (entity, time) rows, ~1% of times exactly
    on an event and ~0.5% exactly at an event time + the TTL (both boundaries are inclusive)."""
    rng = np.random.default_rng(seed)
    ent = rng.integers(0, int(entities / (1 - NO_EVENTS_SHARE)), rows)
    offsets = rng.integers(-30 * DAY_US, SPAN_US + 30 * DAY_US, rows)
    ev_idx = rng.integers(0, events.num_rows, rows)
    ev_offsets = (events.column("ts").to_numpy().astype("datetime64[us]") - START).astype(np.int64)
    ev_codes = pc.cast(pc.utf8_slice_codeunits(events.column(ENTITY), 1), pa.int64()).to_numpy()
    on_event = rng.random(rows) < 0.01
    at_ttl = ~on_event & (rng.random(rows) < 0.005)
    pick = on_event | at_ttl
    ent[pick] = ev_codes[ev_idx[pick]]
    offsets[on_event] = ev_offsets[ev_idx[on_event]]
    offsets[at_ttl] = ev_offsets[ev_idx[at_ttl]] + TTL_DAYS * DAY_US
    dup = np.flatnonzero(rng.random(rows) < 0.02)
    source = rng.integers(0, rows, len(dup))
    ent[dup], offsets[dup] = ent[source], offsets[source]
    ids = pa.array([f"p{i:07d}" for i in range(int(ent.max()) + 1)], pa.string())
    return pa.table(
        {
            "_row": pa.array(np.arange(rows, dtype=np.int64)),
            "event_timestamp": pa.array(START + offsets.astype("timedelta64[us]"), TS),
            ENTITY: ids.take(pa.array(ent)),
        }
    )


def make_view(created: bool) -> Any:
    from medops.features import Feature, FeatureView

    return FeatureView(
        name="vitals_guarded" if created else "vitals",
        entity=ENTITY,
        source="events",
        features=tuple(Feature(n) for n in FEATURES),
        timestamp="ts",
        created="created" if created else None,
        ttl=timedelta(days=TTL_DAYS),
    )


# --- the workspace (one-off preparation) --------------------------------------------------


def ingest_events(ws: Any, name: str, events: pa.Table, folder: Path) -> None:
    """The events as a dataset version, every column kept as it is (no PHI in them)."""
    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource

    path = folder / f"{name}.parquet"
    pq.write_table(events, path, row_group_size=122_880)
    ingest(ws, TablePlan(name, ParquetSource(path), {c: "keep" for c in events.column_names}), actor="admin")
    path.unlink()


def feature_set() -> Any:
    from medops.features import FeatureSet

    features = FeatureSet()
    features.add(make_view(created=False))
    features.add(make_view(created=True))
    return features


# --- the DuckDB peer ---------------------------------------------------------------------


def duckdb_threads() -> int:
    from medops.data.duck import connect

    con = connect()
    try:
        return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    finally:
        con.close()


def _asof_sql(source: str) -> str:
    """What one would write by hand: ASOF LEFT JOIN, TTL as a CASE, ordered by label row."""
    ttl = f"l.event_timestamp - e.ts <= INTERVAL {TTL_DAYS} DAY"
    cols = ", ".join(f"CASE WHEN {ttl} THEN e.{n} END AS {n}" for n in FEATURES)
    return (
        f"SELECT l._row, e.ts AS _event_time, {cols} "
        f"FROM labels l ASOF LEFT JOIN {source} e "
        f"ON l.{ENTITY} = e.{ENTITY} AND l.event_timestamp >= e.ts ORDER BY l._row"
    )


def _duck(threads: int) -> Any:
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_asof(events: Path, labels: pa.Table, threads: int) -> pa.Table:
    """The default mode: the events read from their Parquet file inside the join."""
    con = _duck(threads)
    try:
        con.register("labels", labels)
        return con.sql(_asof_sql(f"read_parquet('{events}')")).to_arrow_table()
    finally:
        con.close()


def prepare(events: Path, out: Path, threads: int) -> None:
    """The same one-off preparation medops's apply does: sorted by entity and time, one row per
    entity and time (the later source row, as medops resolves ties without a created column)."""
    cols = ", ".join(FEATURES)
    con = _duck(threads)
    try:
        con.execute(
            f"COPY (SELECT {ENTITY}, ts, {cols} FROM read_parquet('{events}', file_row_number = true) "
            f"QUALIFY row_number() OVER (PARTITION BY {ENTITY}, ts ORDER BY file_row_number DESC) = 1 "
            f"ORDER BY {ENTITY}, ts) TO '{out}' (FORMAT parquet)"
        )
    finally:
        con.close()


class NativeTable:
    """DuckDB's fastest documented mode: the prepared rows loaded once into its own storage."""

    def __init__(self, prepared: Path, threads: int) -> None:
        self.con = _duck(threads)
        self.con.execute(f"CREATE TABLE ev AS SELECT * FROM read_parquet('{prepared}')")

    def join(self, labels: pa.Table) -> pa.Table:
        cursor = self.con.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.register("labels", labels)
            return cursor.sql(_asof_sql("ev")).to_arrow_table()
        finally:
            cursor.close()

    def close(self) -> None:
        self.con.close()


# --- checks ------------------------------------------------------------------------------


def _floats(column: Any) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray | pa.Array):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))


def agree(ours: pa.Table, peers: dict[str, pa.Table], keys: pa.Table) -> tuple[bool, str]:
    """Every row, every feature, NaN-aware: medops's training set against each DuckDB mode."""
    labels = keys.num_rows
    problems = []
    for name, table in {"medops": ours, **peers}.items():
        if table.num_rows != labels:
            problems.append(f"{name} has {table.num_rows:,} rows for {labels:,} labels")
    if problems:
        return False, "; ".join(problems)
    expected = np.arange(labels, dtype=np.int64)
    for name, table in peers.items():
        if not np.array_equal(table.column("_row").to_numpy(), expected):
            problems.append(f"{name} rows are not in label order")
    for n in FEATURES:
        a = _floats(ours.column(n))
        for name, table in peers.items():
            b = _floats(table.column(n))
            if not np.array_equal(a, b, equal_nan=True):
                differ = int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())
                problems.append(f"{n}: medops != {name} in {differ:,} rows")
    duck = next(iter(peers.values()))
    t_duck = duck.column("_event_time").cast(TS).cast(pa.int64()).to_numpy(zero_copy_only=False)
    label_us = keys.column("event_timestamp").cast(pa.int64()).to_numpy().astype(np.float64)
    matched = ~np.isnan(np.asarray(t_duck, dtype=np.float64))
    t_ours = np.where(matched, t_duck, 0)
    expired = int(np.count_nonzero(matched & (label_us - t_ours > TTL_DAYS * DAY_US)))
    detail = (
        f"{labels:,} rows x {len(FEATURES)} features compared; {int(matched.sum()):,} rows with an event, "
        f"{expired:,} of them past the TTL"
    )
    return not problems, "; ".join(problems) if problems else detail


def guard_check(events: pa.Table, keys: pa.Table, guarded: pa.Table, sample: int = 2_000) -> tuple[bool, str]:
    """Brute force on a sample of labels: the latest event (by time, then created, then source
    row) among those with event time and created time at or before the label time, then the TTL."""
    import pandas as pd

    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(keys.num_rows, size=min(sample, keys.num_rows), replace=False))
    picked = keys.take(pa.array(rows)).to_pandas()
    ev = events.append_column("_seq", pa.array(np.arange(events.num_rows, dtype=np.int64)))
    frame = ev.filter(pc.is_in(ev.column(ENTITY), pa.array(picked[ENTITY].unique()))).to_pandas()
    frame["_c"] = np.maximum(frame["ts"], frame["created"])
    groups = {k: g for k, g in frame.groupby(ENTITY)}
    ttl = pd.Timedelta(days=TTL_DAYS)
    bad = 0
    got = {n: _floats(guarded.column(n).take(pa.array(rows))) for n in FEATURES}
    for i, label in enumerate(picked.itertuples(index=False)):
        want = np.full(len(FEATURES), np.nan)
        g = groups.get(getattr(label, ENTITY))
        if g is not None:
            usable = g[(g["ts"] <= label.event_timestamp) & (g["_c"] <= label.event_timestamp)]
            if len(usable):
                best = usable.sort_values(["ts", "_c", "_seq"]).iloc[-1]
                if label.event_timestamp - best["ts"] <= ttl:
                    want = best[FEATURES].to_numpy(dtype=np.float64, na_value=np.nan)
        have = np.array([got[n][i] for n in FEATURES])
        if not np.array_equal(want, have, equal_nan=True):
            bad += 1
    return bad == 0, f"{len(rows):,} sampled labels checked by brute force, {bad} differ"


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _runs(times: list[float]) -> str:
    return "runs " + " / ".join(f"{t:.2f}" for t in times)


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--dask", action="store_true", help="add the training set on dask-local")
    parser.add_argument("--quick", action="store_true", help="500,000 events, 10,000 entities, 100,000 labels")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.entities, args.labels = 500_000, 10_000, 100_000

    from benchmarks.common import workspace
    from medops.features import FeatureStore

    load_start = load_average()
    t_data, events = timed(lambda: make_events(args.events, args.entities))
    keys = make_labels(args.labels, args.entities, events)
    labels = keys.drop_columns(["_row"])  # what a user hands over: entity and time
    threads = duckdb_threads()
    result: list[list[Any]] = []
    size = f"{args.labels:,} labels x {args.events:,} events"
    with temp_dir("medops-bench-features-") as base, workspace("sqlite") as ws:
        t_ingest, _ = timed(lambda: ingest_events(ws, "events", events, base))
        events_path = base / "events.parquet"  # the peer's copy of the same raw events
        pq.write_table(events.drop_columns(["created"]), events_path, row_group_size=122_880)
        prepared = base / "prepared.parquet"
        t_prepare, _ = timed(lambda: prepare(events_path, prepared, threads))
        store = FeatureStore(ws, feature_set(), executor="local")
        try:
            t_apply, applied = timed(lambda: store.apply("admin"))
            table = next(r.view for r in applied if r.view.name == "vitals")
            table_mb = ws.artifacts.size(table.table_digest) / 1e6
            result.append(
                [
                    f"one-off: apply both views ({table.rows:,} rows, {table_mb:,.0f} MB table)",
                    f"{t_apply:.2f} s",
                    f"{t_prepare:.2f} s",
                    "",
                    "",
                    f"peer: DuckDB sort + de-duplicate to Parquet; ingest {t_ingest:.1f} s (apart)",
                ]
            )

            def medops() -> pa.Table:
                return store.training_table(labels, ["vitals"], timestamp="event_timestamp")

            t_first, _ = timed(medops)  # the first call in this process hashes the table
            native = NativeTable(prepared, threads)
            try:
                sides = {
                    "medops": medops,
                    "duckdb": lambda: duckdb_asof(events_path, keys, threads),
                    "duckdb prepared": lambda: duckdb_asof(prepared, keys, threads),
                    "duckdb native": lambda: native.join(keys),
                }
                times = interleaved(sides, args.rounds)
                mid = medians(times)
                ours = medops()
                peers = {
                    "duckdb": duckdb_asof(events_path, keys, threads),
                    "duckdb prepared": duckdb_asof(prepared, keys, threads),
                    "duckdb native": native.join(keys),
                }
            finally:
                native.close()
            ok, detail = agree(ours, peers, keys)
            del ours, peers
            gc.collect()
            t_ours = mid["medops"]
            speed = mid["duckdb"] / t_ours
            met = speed >= AIM
            result.append(
                [
                    "training set (public path) vs DuckDB ASOF, default: raw events Parquet",
                    f"{t_ours:.2f} s",
                    f"{mid['duckdb']:.2f} s",
                    f"{speed:.2f}",
                    f">= {AIM:g}: {'ok' if met else 'MISSED'}",
                    f"{threads} threads; medops {_runs(times['medops'])}; DuckDB {_runs(times['duckdb'])}",
                ]
            )
            for mode, label in (
                ("duckdb prepared", "vs DuckDB ASOF, prepared Parquet (same one-off prep)"),
                ("duckdb native", "vs DuckDB ASOF, prepared native table (fastest mode)"),
            ):
                result.append(
                    [
                        f"training set (public path) {label}",
                        f"{t_ours:.2f} s",
                        f"{mid[mode]:.2f} s",
                        f"{mid[mode] / t_ours:.2f}",
                        "",
                        f"DuckDB {_runs(times[mode])}",
                    ]
                )
            result.append(
                [
                    "training set, first call in a process (hashes the table)",
                    f"{t_first:.2f} s",
                    "",
                    f"{t_first / t_ours:.2f} x later calls",
                    "",
                    "later calls check the file's identity against the one hashed",
                ]
            )
            result.append(["  values agree (medops, 3 DuckDB modes)", "yes" if ok else "NO", "", "", "", detail])

            def guarded() -> pa.Table:
                return store.training_table(labels, ["vitals_guarded"], timestamp="event_timestamp")

            guard_times = interleaved({"plain": medops, "guarded": guarded}, args.rounds)
            guard_mid = medians(guard_times)
            g_ok, g_detail = guard_check(events, keys, guarded())
            result.append(
                [
                    "training set, backfill guard (created column, 5% late)",
                    f"{guard_mid['guarded']:.2f} s",
                    "",
                    f"{guard_mid['guarded'] / guard_mid['plain']:.2f} x plain",
                    "",
                    f"{'agrees' if g_ok else 'DIFFERS'}: {g_detail}",
                ]
            )
            if args.dask:
                with FeatureStore(ws, feature_set(), executor="dask-local") as on_dask:
                    parts = on_dask.executor.partitions
                    dask_times = interleaved(
                        {
                            "dask": lambda: on_dask.training_table(labels, ["vitals"], timestamp="event_timestamp"),
                            "local": medops,
                        },
                        args.rounds,
                    )
                    same = on_dask.training_table(labels, ["vitals"], timestamp="event_timestamp").equals(medops())
                dask_mid = medians(dask_times)
                result.append(
                    [
                        f"training set on dask-local ({parts} partitions)",
                        f"{dask_mid['dask']:.2f} s",
                        "",
                        f"{dask_mid['dask'] / dask_mid['local']:.2f} x local",
                        "",
                        f"same table as local: {'yes' if same else 'NO'}",
                    ]
                )
        finally:
            store.close()
    print_table(
        f"feature store, point-in-time training set: {size}, {args.entities:,} entities, {len(FEATURES)} features, "
        f"TTL {TTL_DAYS}d (medians of {args.rounds} interleaved rounds)",
        ["benchmark", "medops", "peer", "speed (peer / medops)", "aim", "notes"],
        result,
    )
    print(
        f"data generation {t_data:.1f} s; peak resident memory {_peak_rss_mb():,.0f} MB; {os.cpu_count()} cores; "
        f"load average {load_start} at start, {load_average()} at end"
    )
    print(
        f"training set vs DuckDB ASOF (default, raw events): {speed:.2f}x (aim >= {AIM:g}): "
        f"{'met' if met else 'NOT met'}"
    )
    return result


if __name__ == "__main__":
    main()
