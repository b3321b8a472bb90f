"""Audit trail: append throughput (1 and 4 writers), batched append, and verify of 1M events.

Baselines from the raw library in the same run: the same rows inserted with SQLAlchemy
into a plain table (no hashing, no lock, no triggers), and a plain streaming SELECT of
all rows. Ratios are medops time / raw time (lower is better; 1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert, select

from benchmarks.common import print_table, timed, workspace

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


def run_backend(backend: str, single: int, writers: int, each: int, total: int) -> list[list[Any]]:
    from medops.audit import verify_chain

    rows: list[list[Any]] = []
    with workspace(backend) as ws:
        _raw_meta.create_all(ws.db.engine)
        # 1. one event per transaction, one writer
        t_med, _ = timed(lambda: [ws.trail.record(_event(i)) for i in range(single)])

        def raw_single() -> None:
            for i in range(single):
                with ws.db.write() as s:
                    s.execute(insert(RAW), [_raw_row(10_000_000 + i)])

        t_raw, _ = timed(raw_single)
        rows.append(
            [
                f"{backend}: append, 1 writer, 1 event/txn",
                single,
                f"{single / t_med:,.0f}/s",
                f"{single / t_raw:,.0f}/s",
                f"{t_med / t_raw:.2f}",
            ]
        )
        # 2. several writers at once
        t_conc = _concurrent(str(ws.settings.home), writers, each)
        n = writers * each
        rows.append([f"{backend}: append, {writers} writers, 1 event/txn", n, f"{n / t_conc:,.0f}/s", "", ""])
        assert verify_chain(ws.db).ok
        # 3. batched appends up to `total` events, against a raw executemany of the same rows
        have = verify_chain(ws.db).checked
        remaining = total - have

        def bulk() -> None:
            done = 0
            while done < remaining:
                k = min(BATCH, remaining - done)
                ws.trail.record_many([_event(have + done + j) for j in range(k)])
                done += k

        t_bulk, _ = timed(bulk)

        def raw_bulk() -> None:
            for base in range(0, remaining, BATCH):
                with ws.db.write() as s:
                    s.execute(insert(RAW), [_raw_row(base + j) for j in range(min(BATCH, remaining - base))])

        t_raw_bulk, _ = timed(raw_bulk)
        rows.append(
            [
                f"{backend}: append, batches of {BATCH:,}",
                remaining,
                f"{remaining / t_bulk:,.0f}/s",
                f"{remaining / t_raw_bulk:,.0f}/s",
                f"{t_bulk / t_raw_bulk:.2f}",
            ]
        )
        # 4. verify the whole chain vs a plain scan of as many rows
        t_verify, result = timed(lambda: verify_chain(ws.db))
        assert result.ok and result.checked == total, result

        def raw_scan() -> int:
            count = 0
            with ws.db.engine.connect() as conn:
                res = conn.execution_options(stream_results=True, yield_per=20_000).execute(select(RAW))
                for part in res.partitions():
                    count += len(part)
            return count

        t_scan, scanned = timed(raw_scan)
        rows.append(
            [
                f"{backend}: verify {total:,} events",
                total,
                f"{t_verify:.2f} s",
                f"{t_scan:.2f} s (scan of {scanned:,})",
                f"{t_verify / t_scan:.2f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the trail to verify")
    parser.add_argument("--single", type=int, default=2_000, help="events for the one-writer test")
    parser.add_argument("--each", type=int, default=1_000, help="events per writer in the 4-writer test")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.single, args.each = 20_000, 200, 100
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    rows: list[list[Any]] = []
    for backend in backends:
        rows += run_backend(backend, args.single, 4, args.each, args.events)
    print_table("audit trail", ["benchmark", "events", "medops", "raw SQLAlchemy", "ratio"], rows)
    return rows


if __name__ == "__main__":
    main()
