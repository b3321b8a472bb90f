"""Monitoring at scale: one calendar month of the prediction log holding 10M predictions, judged.

The issue's aim: the monitoring window over 10M logged predictions in under 30 s on 2 cores, without
10M rows in Python. One-off preparation (not timed; its seconds are printed): a workspace; the
drift benchmark's model (bench_monitoring: LightGBM, 20 columns, 16 numeric and 4 categorical)
trained on 100,000 rows and registered, which builds its reference profile; then ``--rows`` logged
predictions in November 2026, written straight into the ``predictions`` table as the log's drain
writes them (each row's inputs the JSON object of its 20 features, its output the probability,
decision and threshold): the current batch of bench_monitoring (shifted columns) repeated, each
copy with its own ids and times.

Timed: ``Services(ws).monitoring.run(Caller("admin"), "drift", since=2026-11-01, until=2026-12-01)``,
what `medops monitor run drift --since 2026-11-01 --until 2026-12-01` runs: read the month's rows
of the log, parse their JSON into columns, count every feature on the profile's grid, judge drift,
quality and the scores, store the window and evaluate the alert rules. Three rounds, medians, peak
RSS of the process (VmHWM) beside them. There is no peer here: Evidently reads frames, not a log.

    python -m benchmarks.bench_monitoring_log [--rows 10000000 --rounds 3 --backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_monitoring import CATEGORICAL, COLUMNS, MODEL, NUMERIC, VERSION, _memory, _prepare
from benchmarks.common import print_table, workspace

AIM_SECONDS = 30.0
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
FOLLOWING = datetime(2026, 12, 1, tzinfo=UTC)
BASE_ROWS = 100_000
INSERT_BATCH = 50_000
FIELDS = ", ".join(
    ["id", "at", "model", "version", "bundle_sha256", "variant", "request_id", "caller", "entity"]
    + ["inputs", "output", "explanation", "latency_ms"]
)


def _texts(base: Path) -> tuple[list[str], list[str]]:
    """The current batch's rows as the log holds them: inputs and output JSON texts."""
    import pandas as pd

    frame = pd.read_parquet(base / "current.parquet").head(BASE_ROWS)
    records = frame[COLUMNS].astype(object).where(frame[COLUMNS].notna(), None).to_dict("records")
    inputs = [json.dumps(r) for r in records]
    rng = np.random.default_rng(3)
    probability = 1 / (1 + np.exp(-(frame[NUMERIC[0]].to_numpy() * 0.3 + rng.normal(0, 1, len(frame)))))
    outputs = [json.dumps({"probability": float(p), "decision": int(p >= 0.5), "threshold": 0.5}) for p in probability]
    return inputs, outputs


def _fill(ws: Any, base: Path, rows: int, sha256: str) -> None:
    """``rows`` predictions of the month, written straight into the table (the drain's insert, at
    tens of microseconds a row, would take longer than the measurement by far)."""
    inputs, outputs = _texts(base)
    step = (FOLLOWING - MONTH) / rows
    sqlite = ws.db.engine.dialect.name == "sqlite"
    connection = ws.db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        for first in range(0, rows, INSERT_BATCH):
            batch = []
            for i in range(first, min(rows, first + INSERT_BATCH)):
                at = MONTH + i * step
                stamp = at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at
                j = i % len(inputs)
                batch.append((str(uuid.uuid4()), stamp, MODEL, VERSION, sha256, "champion", uuid.uuid4().hex,
                              "ehr", None, inputs[j], outputs[j], None, 1.0))  # fmt: skip
            if sqlite:
                cursor.execute("BEGIN")  # medops's SQLite connections leave transactions to the caller
                cursor.executemany(f"INSERT INTO predictions ({FIELDS}) VALUES ({', '.join('?' * 13)})", batch)
            else:
                with cursor.copy(f"COPY predictions ({FIELDS}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            connection.commit()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="1M rows, one round")
    args = parser.parse_args(argv)
    rows, rounds = (1_000_000, 1) if args.quick else (args.rows, args.rounds)

    from medops.caller import Caller
    from medops.registry.versions import get
    from medops.services import Services

    with workspace(args.backend) as ws:
        base = Path(ws.settings.home).parent
        start = time.perf_counter()
        _prepare(ws, base, BASE_ROWS)
        prepared = time.perf_counter() - start
        start = time.perf_counter()
        _fill(ws, base, rows, get(ws, MODEL, VERSION).artifact_sha256)
        filled = time.perf_counter() - start
        print(f"prepared the model in {prepared:.1f} s; wrote {rows:,} log rows in {filled:.1f} s", flush=True)
        services, caller = Services(ws), Caller("admin")
        seconds = []
        for round_ in range(rounds):
            start = time.perf_counter()
            ran = services.monitoring.run(caller, MODEL, since=MONTH, until=FOLLOWING)
            seconds.append(time.perf_counter() - start)
            (window,) = ran.windows
            assert window.rows == rows, (window.rows, rows)
            print(f"round {round_ + 1}: {seconds[-1]:.2f} s, drifted {sorted(window.drifted)}", flush=True)
        peak = _memory()["VmHWM"]
    median = statistics.median(seconds)
    met = "met" if median < AIM_SECONDS else "NOT met"
    print_table(
        f"One monthly window of {rows:,} logged predictions, {len(NUMERIC)} numeric and {len(CATEGORICAL)} "
        f"categorical features ({args.backend}; median of {rounds})",
        ["", "seconds", "rows/s", "peak RSS (MB)"],
        [
            ["medops monitor run", f"{median:.2f}", f"{rows / median:,.0f}", f"{peak:,.0f}"],
            ["aim", f"< {AIM_SECONDS:.0f} s: {met}", "", ""],
        ],
    )
    return {"rows": rows, "seconds": seconds, "median": median, "peak_mb": peak, "backend": args.backend}


if __name__ == "__main__":
    main()
