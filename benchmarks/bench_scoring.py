"""Batch scoring: `medops score` against raw LightGBM ``predict``, rows per second on 1M rows.

A LightGBM model (100 trees) is trained and registered on a synthetic frame of numeric
features plus one categorical feature; 1M fresh rows of the same shape are written as Parquet.

- medops: ``ServingService.score`` as `medops score NAME:1 --input rows.parquet --output
  preds.parquet` runs it: hash the input (its lineage node), read it in chunks, check every
  row against the trained ranges and categories, impute and one-hot encode, LightGBM,
  write probability, decision, row, model, version and bundle SHA-256 to Parquet, rename
  into place, record lineage and the audit event.
- raw: the same booster's ``predict`` on the model matrix of the same rows, already built
  and in memory (what a user holding only the LightGBM model and preprocessed data runs;
  no reading, no checks, no writing).

Rounds are interleaved (medops, raw, medops, raw...) so load on the machine falls on both;
the table shows the medians. Aim: medops >= 0.8x raw's rows/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import print_table, workspace

AIM = 0.8
NUMERIC = [f"x{i}" for i in range(8)]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # clipped to +-3: scored rows stay inside the ranges the model was trained on (else they are refused)
    frame = pd.DataFrame({name: np.clip(rng.normal(0, 1, n), -3, 3) for name in NUMERIC})
    frame["ward"] = rng.choice(["a", "b", "c", "d"], n)
    logit = frame["x0"] - 0.5 * frame["x1"] + 0.8 * (frame["ward"] == "b")
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["patient_id"] = [f"p{i}" for i in range(n)]
    return frame


def _register(ws: Any, base: Path, train_rows: int) -> None:
    import pyarrow.parquet as pq

    from medops.data.datasets import get
    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource
    from medops.registry.versions import register
    from medops.training import Tracker
    from medops.training.train import TrainConfig, train
    from medops.training.trainers import ModelSpec

    frame = _frame(train_rows, 0)
    path = base / "train.parquet"
    frame.to_parquet(path, index=False)
    ingest(ws, TablePlan("bench", ParquetSource(path), {c: "keep" for c in frame.columns}), actor="admin")
    info = get(ws.db, "bench")
    rows = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
    config = TrainConfig(
        [*NUMERIC, "ward"],
        "label",
        ModelSpec("lightgbm", {"n_estimators": 100}),
        split="stratified",
        group=None,
        seed=1,
        inputs=(info.ref,),
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": False},
    )
    run = train(Tracker(ws), rows, config, actor="admin").run_id
    register(ws, run, "bench", actor="admin")


def main(argv: list[str] | None = None) -> float:
    """Prints the table; returns medops's rows/s over raw LightGBM's (bench_serving reports it)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rounds = 100_000, 3
    from medops.caller import Caller
    from medops.registry.predictor import load_model
    from medops.services import Services

    with workspace("sqlite") as ws:
        base = Path(ws.settings.home).parent
        _register(ws, base, 20_000)
        rows = _frame(args.rows, 1).drop(columns="label")
        source = base / "rows.parquet"
        rows.to_parquet(source, index=False)
        predictor = load_model(ws, "bench:1")
        assert predictor.compiled is not None and predictor.compiled.booster is not None
        booster = predictor.compiled.booster
        matrix = predictor.compiled.matrix(rows)
        serving = Services(ws).serving
        caller = Caller("admin")
        medops_times: list[float] = []
        raw_times: list[float] = []
        for r in range(args.rounds):
            out = base / f"preds-{r}.parquet"
            start = time.perf_counter()
            result = serving.score(caller, "bench:1", serving.score_input(str(source)), out, chunk_rows=args.chunk_rows)
            medops_times.append(time.perf_counter() - start)
            assert result.rows == args.rows
            out.unlink()
            start = time.perf_counter()
            booster.predict(matrix)
            raw_times.append(time.perf_counter() - start)
    print(
        "seconds per round, in order: medops",
        [round(t, 2) for t in medops_times],
        "raw",
        [round(t, 2) for t in raw_times],
    )
    medops_rate = args.rows / statistics.median(medops_times)
    raw_rate = args.rows / statistics.median(raw_times)
    ratio = medops_rate / raw_rate
    print_table(
        f"Batch scoring, {args.rows:,} rows, LightGBM 100 trees, chunks of {args.chunk_rows:,} "
        f"(median of {args.rounds} interleaved rounds)",
        ["", "seconds", "rows/s"],
        [
            [
                "medops score (read, check, score, write, lineage, audit)",
                f"{statistics.median(medops_times):.2f}",
                f"{medops_rate:,.0f}",
            ],
            ["raw LightGBM predict (matrix in memory)", f"{statistics.median(raw_times):.2f}", f"{raw_rate:,.0f}"],
            ["ratio medops / raw", "", f"{ratio:.2f}x (aim >= {AIM}x: {'met' if ratio >= AIM else 'NOT met'})"],
        ],
    )
    return ratio


if __name__ == "__main__":
    main()
