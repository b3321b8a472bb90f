"""Audit trail: append throughput (1 and 4 writers), batched append, and verify of 1M events.

medops's paths: ``AuditTrail.record`` (one event per transaction: what every governed change
writes inside its own transaction), ``record_many`` (batches of 10,000), and
``Workspace.verify_audit()``, what ``medops audit verify`` runs (the whole hash chain, then the
signed checkpoints). Baselines from the raw library in the same run, on the same database:
the same rows inserted with SQLAlchemy Core into a plain table (no hashing, no lock, no
triggers), one ``insert()`` per transaction for the single appends and an executemany of each
batch (SQLAlchemy's documented fastest Core bulk insert, "insertmanyvalues") for the batches,
and a plain streaming SELECT of all rows (``stream_results`` + ``yield_per``, its documented
mode for large results). On PostgreSQL the fastest documented bulk load is ``COPY``
(psycopg's ``cursor.copy``): a compared side of its own for the batches.

The sides run interleaved in a rotating order (``common.interleaved``), each once untimed
first: the appends cut into ``--rounds`` equal slices per side, the verify and the scan
``--rounds`` times each; medians are reported, with the load average at the start and the end.
The 4-writer row has no baseline. Ratios are medops time / raw time (lower is better; 1.0 =
no overhead); the chain is checked intact after the appends and by the verify.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, func, insert, select

from benchmarks.common import interleaved, load_average, medians, print_table, workspace

BATCH = 10_000
_raw_meta = MetaData()
RAW = Table(
    "bench_raw_events",
    _raw_meta,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(32)),
    Column("actor", String(64)),
    Column("action", String(64)),
    Column("entity_type", String(64)),
    Column("entity_id", String(200)),
    Column("before", Text),
    Column("after", Text),
    Column("reason", Text),
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
)


def _event(i: int) -> Any:
    from medops.audit import NewEvent

    return NewEvent(
        f"user{i % 20}",
        "feature.materialize",
        "feature_view",
        f"fv-{i}",
        before={"version": i, "rows": 1000, "owner": "alice"},
        after={"version": i + 1, "rows": 1200, "owner": "alice"},
        reason="scheduled refresh",
    )


def _raw_row(i: int) -> dict[str, Any]:
    return dict(
        seq=i,
        ts="2026-11-24T00:00:00.000000Z",
        actor=f"user{i % 20}",
        action="feature.materialize",
        entity_type="feature_view",
        entity_id=f"fv-{i}",
        before=f'{{"owner":"alice","rows":1000,"version":{i}}}',
        after=f'{{"owner":"alice","rows":1200,"version":{i + 1}}}',
        reason="scheduled refresh",
        prev_hash="0" * 64,
        hash=f"{i:064x}",
    )


def _writer(home: str, offset: int, count: int, start: Any) -> None:
    from medops.workspace import Workspace

    ws = Workspace.open(Path(home))
    start.wait()
    for i in range(count):
        ws.trail.record(_event(offset + i))
    ws.close()


def _concurrent(home: str, writers: int, each: int) -> float:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(home, w * each, each, start)) for w in range(writers)]
    for p in procs:
        p.start()
    import time

    time.sleep(1.0)  # let every process import and connect before the clock starts
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("a writer process failed")
    return time.perf_counter() - began


COPIED = RAW.to_metadata(_raw_meta, name="bench_copied_events")  # COPY's rows: the scanned table keeps its count
COLUMNS = [c.name for c in RAW.columns]


def _copy(ws: Any, rows: list[dict[str, Any]]) -> None:
    """The rows loaded by PostgreSQL's COPY through psycopg, in one transaction."""
    conn = ws.db.engine.raw_connection()
    try:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {COPIED.name} ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([row[c] for c in COLUMNS])
        conn.commit()
    finally:
        conn.close()


def run_backend(backend: str, single: int, writers: int, each: int, total: int, rounds: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    with workspace(backend) as ws:
        _raw_meta.create_all(ws.db.engine)
        seq = iter(range(10_000_000, 1_000_000_000))  # the raw table's keys, never reused
        # 1. one event per transaction, one writer: each side appends a slice per round
        per = max(1, single // rounds)
        recorded = iter(range(1_000_000_000))

        def med_single() -> None:
            for _ in range(per):
                ws.trail.record(_event(next(recorded)))

        def raw_single() -> None:
            for _ in range(per):
                with ws.db.write() as s:
                    s.execute(insert(RAW), [_raw_row(next(seq))])

        one = medians(interleaved({"medops": med_single, "raw": raw_single}, rounds))
        rows.append(
            [
                f"{backend}: append, 1 writer, 1 event/txn",
                per * rounds,
                f"{per / one['medops']:,.0f}/s",
                f"{per / one['raw']:,.0f}/s",
                f"{one['medops'] / one['raw']:.2f}",
                "",
                "",
            ]
        )
        # 2. several writers at once
        t_conc = _concurrent(str(ws.settings.home), writers, each)
        n = writers * each
        rows.append([f"{backend}: append, {writers} writers, 1 event/txn", n, f"{n / t_conc:,.0f}/s", "", "", "", ""])
        have = ws.verify_audit().chain.checked
        # 3. batched appends up to `total` events: the warm-up slice takes what does not divide evenly
        remaining = total - have
        slice_ = remaining // (rounds + 1)
        sizes = [remaining - slice_ * rounds] + [slice_] * rounds

        def batches(size: int) -> list[int]:
            return [min(BATCH, size - start) for start in range(0, size, BATCH)]

        med_sizes, raw_sizes, copy_sizes = iter(sizes), iter(sizes), iter(sizes)

        def bulk() -> None:
            for k in batches(next(med_sizes)):
                ws.trail.record_many([_event(next(recorded)) for _ in range(k)])

        def raw_bulk() -> None:
            for k in batches(next(raw_sizes)):
                with ws.db.write() as s:
                    s.execute(insert(RAW), [_raw_row(next(seq)) for _ in range(k)])

        def copy_bulk() -> None:
            for k in batches(next(copy_sizes)):
                _copy(ws, [_raw_row(next(seq)) for _ in range(k)])

        sides = {"medops": bulk, "raw": raw_bulk} | ({"copy": copy_bulk} if backend == "postgresql" else {})
        many = medians(interleaved(sides, rounds))
        fastest = ["", ""]
        if "copy" in many:
            fastest = [f"{slice_ / many['copy']:,.0f}/s", f"{many['medops'] / many['copy']:.2f}"]
        rows.append(
            [
                f"{backend}: append, batches of {BATCH:,}",
                slice_ * rounds,
                f"{slice_ / many['medops']:,.0f}/s",
                f"{slice_ / many['raw']:,.0f}/s",
                f"{many['medops'] / many['raw']:.2f}",
                *fastest,
            ]
        )
        # 4. verify the whole chain (and the checkpoints) vs a plain scan of as many rows
        with ws.db.write() as s:  # topped up to as many rows as the trail holds (the 4 writers' have no raw twin)
            missing = total - int(s.execute(select(func.count()).select_from(RAW)).scalar_one())
            for start in range(0, missing, BATCH):
                s.execute(insert(RAW), [_raw_row(next(seq)) for _ in range(min(BATCH, missing - start))])
        results: dict[str, Any] = {}

        def verify() -> None:
            results["verify"] = ws.verify_audit()

        def raw_scan() -> None:
            count = 0
            with ws.db.engine.connect() as conn:
                res = conn.execution_options(stream_results=True, yield_per=20_000).execute(select(RAW))
                for part in res.partitions():
                    count += len(part)
            results["scan"] = count

        check = medians(interleaved({"medops": verify, "raw": raw_scan}, rounds))
        result = results["verify"]
        assert result.ok and result.chain.checked == total, result
        rows.append(
            [
                f"{backend}: verify {total:,} events",
                total,
                f"{check['medops']:.2f} s",
                f"{check['raw']:.2f} s (scan of {results['scan']:,})",
                f"{check['medops'] / check['raw']:.2f}",
                "",
                "",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the trail to verify")
    parser.add_argument("--single", type=int, default=2_000, help="events for the one-writer test")
    parser.add_argument("--each", type=int, default=1_000, help="events per writer in the 4-writer test")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison (medians)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.single, args.each, args.rounds = 20_000, 200, 100, 3
    print(f"load average at start: {load_average()}")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    rows: list[list[Any]] = []
    for backend in backends:
        rows += run_backend(backend, args.single, 4, args.each, args.events, args.rounds)
    print_table(
        f"audit trail (medians of {args.rounds} interleaved rounds)",
        ["benchmark", "events", "medops", "raw SQLAlchemy", "ratio", "PostgreSQL COPY (fastest)", "ratio vs COPY"],
        rows,
    )
    print(
        "raw: SQLAlchemy Core insert() per transaction / executemany per batch (its fastest documented Core bulk "
        "insert); PostgreSQL's fastest documented bulk load is COPY, compared on its own; scan: stream_results"
    )
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
