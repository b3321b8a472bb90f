"""Feature store, offline: a point-in-time join of 1,000,000 label rows to 5,000,000 feature
events (100,000 entities, 10 float features, ~3 years of event times, TTL 365 days).

medops joins through its stored feature table (a Parquet file, built once and timed apart)
with ``join_partitioned`` on the local executor. Peers, in the same run and on the same
data, each reading the events from Parquet inside the timed region: a hand-written DuckDB
ASOF LEFT JOIN (TTL applied with a CASE, same thread count) and pandas ``merge_asof``
(``by`` entity, backward, tolerance 365 days, label order restored). All three must give
the same values (checked on every row, NaN-aware).

Aims: medops within 1.5x the DuckDB ASOF join; medops at least 5x faster than pandas.
Extra rows, without a peer: the backfill guard (a view with a ``created`` column, ~5% of
events known a few days late; its values checked by brute force on a sample of labels),
and the same join on ``DaskExecutor("dask-local")`` (cluster opened before the timing).
"""

from __future__ import annotations

import argparse
import gc
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import print_table, temp_dir, timed

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
AIM_DUCKDB = 1.5
AIM_PANDAS = 5.0
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


# --- contenders --------------------------------------------------------------------------


def build(view: Any, events: pa.Table, path: Path) -> tuple[float, float, int]:
    """The view's feature table from the events: (build seconds, write seconds, rows)."""
    from medops.data.duck import connect
    from medops.features.offline import build_feature_table, write_table

    con = connect()
    try:
        t_build, table = timed(lambda: build_feature_table(con, view, events))
    finally:
        con.close()
    t_write, _ = timed(lambda: write_table(table, path))
    return t_build, t_write, table.num_rows


def medops_join(executor: Any, view: Any, keys: pa.Table, feats: Path) -> pa.Table:
    from medops.features.partitions import join_partitioned
    from medops.features.pit import JoinOptions

    return join_partitioned(executor, view, keys, feats, ENTITY, JoinOptions())


def duckdb_threads() -> int:
    from medops.data.duck import connect

    con = connect()
    try:
        return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    finally:
        con.close()


def duckdb_asof(events: Path, labels: pa.Table, threads: int) -> pa.Table:
    """What one would write by hand: ASOF LEFT JOIN, TTL as a CASE, ordered by label row."""
    import duckdb

    ttl = f"l.event_timestamp - e.ts <= INTERVAL {TTL_DAYS} DAY"
    cols = ", ".join(f"CASE WHEN {ttl} THEN e.{n} END AS {n}" for n in FEATURES)
    sql = (
        f"SELECT l._row, e.ts AS _event_time, {cols} "
        f"FROM labels l ASOF LEFT JOIN read_parquet('{events}') e "
        f"ON l.{ENTITY} = e.{ENTITY} AND l.event_timestamp >= e.ts ORDER BY l._row"
    )
    con = duckdb.connect(config={"threads": threads})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("labels", labels)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def pandas_asof(events: Path, labels: Any) -> Any:
    """merge_asof on time, by entity, backward, 365-day tolerance; then the labels' order back."""
    import pandas as pd

    frame = pd.read_parquet(events, columns=[ENTITY, "ts", *FEATURES]).sort_values("ts", kind="stable")
    left = labels.sort_values("event_timestamp", kind="stable")
    out = pd.merge_asof(
        left,
        frame,
        left_on="event_timestamp",
        right_on="ts",
        by=ENTITY,
        direction="backward",
        tolerance=pd.Timedelta(days=TTL_DAYS),
    )
    return out.sort_values("_row", kind="stable").reset_index(drop=True)


# --- checks ------------------------------------------------------------------------------


def _floats(column: Any) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray | pa.Array):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))


def agree(ours: pa.Table, duck: pa.Table, frame: Any, keys: pa.Table) -> tuple[bool, str]:
    """Every row, every feature, NaN-aware; plus the matched event time against DuckDB's."""
    labels = keys.num_rows
    problems = []
    for name, rows in (("medops", ours.num_rows), ("duckdb", duck.num_rows), ("pandas", len(frame))):
        if rows != labels:
            problems.append(f"{name} has {rows:,} rows for {labels:,} labels")
    if problems:
        return False, "; ".join(problems)
    expected = np.arange(labels, dtype=np.int64)
    for name, rows in (
        ("medops", ours.column("_row").to_numpy()),
        ("duckdb", duck.column("_row").to_numpy()),
        ("pandas", frame["_row"].to_numpy()),
    ):
        if not np.array_equal(rows, expected):
            problems.append(f"{name} rows are not in label order")
    for n in FEATURES:
        a, b, c = _floats(ours.column(n)), _floats(duck.column(n)), _floats(frame[n])
        if not np.array_equal(a, b, equal_nan=True):
            problems.append(f"{n}: medops != duckdb in {int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum()):,} rows")
        if not np.array_equal(a, c, equal_nan=True):
            problems.append(f"{n}: medops != pandas in {int((~((a == c) | (np.isnan(a) & np.isnan(c)))).sum()):,} rows")
    t_ours = ours.column("_event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
    t_duck = duck.column("_event_time").cast(TS).cast(pa.int64()).to_numpy(zero_copy_only=False)
    if not np.array_equal(t_ours, t_duck, equal_nan=True):
        problems.append("_event_time: medops != duckdb")
    label_us = keys.column("event_timestamp").cast(pa.int64()).to_numpy().astype(np.float64)
    matched = ~np.isnan(t_ours)
    expired = int(np.count_nonzero(matched & (label_us - np.where(matched, t_ours, 0) > TTL_DAYS * DAY_US)))
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


def best_of(repeat: int, fn: Any) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs, and the last result (the previous ones are freed first)."""
    (best, _, result) = interleaved(repeat, {"only": fn})["only"]
    return best, result


def interleaved(repeat: int, contenders: dict[str, Any]) -> dict[str, tuple[float, list[float], Any]]:
    """``repeat`` rounds, each running every contender once, so a passing load hits all alike.

    Per contender: the fastest time, all the times, and the last result."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, Any] = dict.fromkeys(contenders)
    for _ in range(repeat):
        for name, fn in contenders.items():
            results[name] = None
            gc.collect()
            seconds, results[name] = timed(fn)
            times[name].append(seconds)
    return {name: (min(times[name]), times[name], results[name]) for name in contenders}


def _spread(times: list[float]) -> str:
    return "runs " + " / ".join(f"{t:.2f}" for t in times)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the fastest is reported")
    parser.add_argument("--no-dask", action="store_true", help="skip the dask-local row")
    parser.add_argument("--quick", action="store_true", help="500,000 events, 10,000 entities, 100,000 labels")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.entities, args.labels = 500_000, 10_000, 100_000

    from medops.features.executor import DaskExecutor, LocalExecutor

    load_start = _load()
    t_data, events = timed(lambda: make_events(args.events, args.entities))
    keys = make_labels(args.labels, args.entities, events)
    labels_frame = keys.to_pandas()
    threads = duckdb_threads()
    plain, guarded = make_view(created=False), make_view(created=True)
    result: list[list[Any]] = []
    aims: list[str] = []
    size = f"{args.labels:,} labels x {args.events:,} events"
    with temp_dir("medops-bench-features-") as base:
        events_path = base / "events.parquet"
        pq.write_table(events.drop_columns(["created"]), events_path, row_group_size=122_880)
        feats_path, guarded_path = base / "feats.parquet", base / "feats_guarded.parquet"
        b_build, b_write, n_feats = build(plain, events.drop_columns(["created"]), feats_path)
        g_build, g_write, _ = build(guarded, events, guarded_path)
        result.append(
            [
                f"build feature table ({n_feats:,} rows) + write Parquet",
                f"{b_build:.2f} s + {b_write:.2f} s",
                "",
                "",
                "",
                f"with created column: {g_build:.2f} s + {g_write:.2f} s",
            ]
        )

        local = LocalExecutor()
        runs = interleaved(
            args.repeat,
            {
                "medops": lambda: medops_join(local, plain, keys, feats_path),
                "duckdb": lambda: duckdb_asof(events_path, keys, threads),
                "pandas": lambda: pandas_asof(events_path, labels_frame),
            },
        )
        (t_ours, s_ours, ours), (t_duck, s_duck, duck), (t_pandas, s_pandas, frame) = (
            runs["medops"],
            runs["duckdb"],
            runs["pandas"],
        )
        del runs
        ok, detail = agree(ours, duck, frame, keys)
        del duck, frame
        gc.collect()
        duck_ok = t_ours / t_duck <= AIM_DUCKDB
        pandas_ok = t_pandas / t_ours >= AIM_PANDAS
        result.append(
            [
                "PIT join, medops vs DuckDB ASOF LEFT JOIN",
                f"{t_ours:.2f} s",
                f"{t_duck:.2f} s",
                f"{t_ours / t_duck:.2f}",
                f"<= {AIM_DUCKDB:g}: {'ok' if duck_ok else 'MISSED'}",
                f"{threads} threads; medops {_spread(s_ours)}; DuckDB {_spread(s_duck)}",
            ]
        )
        result.append(
            [
                "PIT join, medops vs pandas merge_asof",
                f"{t_ours:.2f} s",
                f"{t_pandas:.2f} s",
                f"{t_pandas / t_ours:.2f}",
                f">= {AIM_PANDAS:g}: {'ok' if pandas_ok else 'MISSED'}",
                f"ratio is pandas / medops; pandas {_spread(s_pandas)}",
            ]
        )
        result.append(["  values agree (medops, DuckDB, pandas)", "yes" if ok else "NO", "", "", "", detail])
        aims.append(
            f"medops / DuckDB ASOF = {t_ours / t_duck:.2f} (aim <= {AIM_DUCKDB:g}): {'met' if duck_ok else 'NOT met'}"
        )
        aims.append(
            f"pandas / medops = {t_pandas / t_ours:.2f} (aim >= {AIM_PANDAS:g}): {'met' if pandas_ok else 'NOT met'}"
        )
        del ours
        gc.collect()

        t_guard, joined = best_of(args.repeat, lambda: medops_join(local, guarded, keys, guarded_path))
        g_ok, g_detail = guard_check(events, keys, joined)
        result.append(
            [
                "PIT join, backfill guard (created column, 5% late)",
                f"{t_guard:.2f} s",
                "",
                f"{t_guard / t_ours:.2f} x plain",
                "",
                f"{'agrees' if g_ok else 'DIFFERS'}: {g_detail}",
            ]
        )
        del joined
        gc.collect()

        if not args.no_dask:
            dask = DaskExecutor("dask-local")
            try:
                t_dask, joined = best_of(args.repeat, lambda: medops_join(dask, plain, keys, feats_path))
                parts = dask.partitions
            finally:
                dask.close()
            same = joined.equals(medops_join(local, plain, keys, feats_path))
            result.append(
                [
                    f"PIT join on dask-local ({parts} partitions)",
                    f"{t_dask:.2f} s",
                    "",
                    f"{t_dask / t_ours:.2f} x local",
                    "",
                    f"same table as local: {'yes' if same else 'NO'}",
                ]
            )
            del joined
    print_table(
        f"feature store, point-in-time join: {size}, {args.entities:,} entities, {len(FEATURES)} features, "
        f"TTL {TTL_DAYS}d (best of {args.repeat})",
        ["benchmark", "medops", "peer", "ratio", "aim", "notes"],
        result,
    )
    print(
        f"data generation {t_data:.1f} s; peak resident memory {_peak_rss_mb():,.0f} MB; "
        f"load average {load_start} at start, {_load()} at end"
    )
    for line in aims:
        print(line)
    return result


if __name__ == "__main__":
    main()
