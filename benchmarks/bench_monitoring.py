"""Monitoring: drift of a 1M-row batch, medops against Evidently's data drift preset, same frames.

Synthetic frames of 20 columns (16 numeric, 4 categorical) are generated once and written as
Parquet: a reference and a current batch of 1M rows each. In the current batch 4 numeric columns
are shifted on purpose (a mean shift of half a standard deviation, a x1.2 scale as a calibration
change, a wider spread, a count whose mean goes from 3 to 4) and one categorical column's
frequencies change; the other 15 columns are drawn afresh from the same distributions.

One-off preparation (not timed; its seconds are printed): a workspace; the reference rows plus a
synthetic label ingested as a dataset; a LightGBM model (20 trees, all 20 columns as features)
trained on them with a stratified 80/20 split, sized so that its training rows are the 1M
reference rows, and registered through ``Services(ws).registry.register``, which builds the
version's reference profile from those training rows; the same training rows written as the
reference Parquet Evidently reads; the current Parquet ingested as dataset ``current``, and its
first 5,000 rows as dataset ``warmup``.

- medops: ``Services(ws).monitoring.run(Caller("admin"), "drift:1", dataset="current")``, what
  `medops monitor run drift:1 --dataset current` runs: read the stored dataset's Parquet in
  batches of 100,000 rows, score every row again with the verified bundle (the window judges
  prediction drift too), count each feature on the profile's grid, judge drift and data quality,
  store the window's document and row, evaluate the alert rules. The reference profile was built
  at registration, so nothing of the reference rows is read here.
- Evidently: read both Parquet files with pandas, ``Dataset.from_pandas`` with an explicit
  ``DataDefinition`` (the same numeric and categorical columns as medops), then
  ``Report([DataDriftPreset()], include_tests=True).run(current, reference)`` and its ``dict()``;
  a column is flagged when its "Value Drift" test fails. Evidently does not score anything.

Each timed call runs in a fresh subprocess (Evidently's in its own virtual environment: it needs
pandas < 3), so peak RSS (VmHWM from /proc) is per side. In each process: imports (and opening the
workspace), then one untimed warm-up call on 5,000 rows of the same frames (so lazy imports and
first-use set-up inside either library are not timed; 5,000 > 1,000 keeps Evidently on the methods
it uses at 1M rows), then the timed call; the first two are reported apart. Reading the Parquet
is inside the timing for both. Rounds are interleaved (medops, Evidently, medops, Evidently...);
the table shows medians. Aims: medops >= 50x faster than Evidently, and under 1 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import print_table, timed, workspace

AIM_RATIO = 50.0
AIM_PEAK_MB = 1024.0
NUMERIC = [f"num_{i:02d}" for i in range(16)]
CATEGORICAL = [f"cat_{i:02d}" for i in range(4)]
COLUMNS = [*NUMERIC, *CATEGORICAL]
SHIFTED = ["num_00", "num_01", "num_02", "num_03", "cat_00"]
MODEL, VERSION = "drift", 1
TEST_SIZE = 0.2
WARMUP_ROWS = 5_000
REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVIDENTLY = REPO.parent / ".evidently-venv" / "bin" / "python"
CAT_00 = ["a", "b", "c", "d"]
CAT_03 = [f"dx{i:02d}" for i in range(12)]


def _frame(n: int, seed: int, *, shifted: bool) -> pd.DataFrame:
    """20 columns; with ``shifted`` the columns in SHIFTED move, the others keep their distribution."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    cols["num_00"] = rng.normal(0.5 if shifted else 0.0, 1.0, n)  # mean + 0.5 SD
    cols["num_01"] = rng.lognormal(4.5, 0.35, n) * (1.2 if shifted else 1.0)  # a lab recalibrated x1.2
    cols["num_02"] = rng.normal(50.0, 15.0 if shifted else 10.0, n)  # wider spread
    cols["num_03"] = rng.poisson(4.0 if shifted else 3.0, n)  # a count, mean 3 -> 4
    cols["num_04"] = rng.normal(0.0, 1.0, n)
    cols["num_05"] = rng.normal(100.0, 15.0, n)
    cols["num_06"] = rng.uniform(0.0, 1.0, n)
    cols["num_07"] = rng.gamma(2.0, 1.0, n)
    cols["num_08"] = rng.poisson(5.0, n)
    cols["num_09"] = rng.integers(18, 96, n)  # age in years
    cols["num_10"] = rng.lognormal(1.0, 0.6, n)
    cols["num_11"] = rng.normal(120.0, 20.0, n)
    cols["num_12"] = rng.exponential(2.0, n)
    cols["num_13"] = rng.normal(-3.0, 0.5, n)
    cols["num_14"] = rng.beta(2.0, 5.0, n)
    cols["num_15"] = np.round(rng.normal(37.0, 0.7, n), 1)  # temperature, one decimal
    p0 = [0.3, 0.3, 0.25, 0.15] if shifted else [0.5, 0.3, 0.15, 0.05]
    cols["cat_00"] = rng.choice(CAT_00, n, p=p0)
    cols["cat_01"] = rng.choice([f"ward_{i}" for i in range(6)], n)
    cols["cat_02"] = rng.choice(["F", "M"], n, p=[0.52, 0.48])
    zipf = 1.0 / np.arange(1, len(CAT_03) + 1)
    cols["cat_03"] = rng.choice(CAT_03, n, p=zipf / zipf.sum())
    return pd.DataFrame(cols)


def _label(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = (
        -1.0
        + 0.8 * frame["num_00"]
        - 0.5 * frame["num_04"]
        + 0.02 * (frame["num_09"] - 55)
        + 0.6 * (frame["cat_01"] == "ward_2")
        + 0.4 * (frame["cat_00"] == "d")
    )
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def _prepare(ws: Any, base: Path, rows: int) -> tuple[Path, Path, dict[str, float], int]:
    """The registered model with its profile, the two Parquet files, each step's seconds, and the reference rows."""
    import pyarrow.parquet as pq

    from medops.caller import Caller
    from medops.data.datasets import get
    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource
    from medops.evaluation.evaluate import test_set
    from medops.monitoring.profiles import get as profile_info
    from medops.services import Services
    from medops.training import Tracker
    from medops.training.train import TrainConfig, train
    from medops.training.trainers import ModelSpec

    steps: dict[str, float] = {}
    start = time.perf_counter()
    # the training frame is sized so that its 80 % training split (the profile's rows) is ``rows``
    training = _frame(round(rows / (1 - TEST_SIZE)), 0, shifted=False)
    training["label"] = _label(training, 1)
    training_path = base / "training.parquet"
    training.to_parquet(training_path, index=False)
    current = _frame(rows, 2, shifted=True)
    current_path = base / "current.parquet"
    current.to_parquet(current_path, index=False)
    del training, current
    steps["generate and write the frames"] = time.perf_counter() - start

    start = time.perf_counter()
    plan = TablePlan("reference", ParquetSource(training_path), {c: "keep" for c in [*COLUMNS, "label"]})
    ingest(ws, plan, actor="admin")
    info = get(ws.db, "reference")
    frame = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
    steps["ingest the reference rows"] = time.perf_counter() - start

    start = time.perf_counter()
    config = TrainConfig(
        COLUMNS,
        "label",
        ModelSpec("lightgbm", {"n_estimators": 20}),
        split="stratified",
        group=None,
        test_size=TEST_SIZE,
        seed=1,
        inputs=(info.ref,),
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": False},
    )
    run = train(Tracker(ws), frame, config, actor="admin").run_id
    del frame
    steps["train (LightGBM, 20 trees)"] = time.perf_counter() - start

    start = time.perf_counter()
    version = Services(ws).registry.register(Caller("admin"), run, MODEL)
    assert version.version == VERSION
    profiled = profile_info(ws, MODEL, VERSION)  # registration builds it quietly: make sure it exists
    steps["register (bundle and reference profile)"] = time.perf_counter() - start

    start = time.perf_counter()
    # Evidently's reference: exactly the rows the profile was built from (the run's training split)
    reference = test_set(Tracker(ws), run, lambda loc: ".".join(loc)).train_frame[COLUMNS]
    assert len(reference) == profiled.rows
    reference_path = base / "reference.parquet"
    reference.reset_index(drop=True).to_parquet(reference_path, index=False)
    del reference
    steps["write the training split as Evidently's reference"] = time.perf_counter() - start

    start = time.perf_counter()
    ingest(ws, TablePlan("current", ParquetSource(current_path), {c: "keep" for c in COLUMNS}), actor="admin")
    warmup_path = base / "warmup.parquet"
    pd.read_parquet(current_path).head(WARMUP_ROWS).to_parquet(warmup_path, index=False)
    ingest(ws, TablePlan("warmup", ParquetSource(warmup_path), {c: "keep" for c in COLUMNS}), actor="admin")
    steps["ingest the current batch (and its first rows for the warm-up)"] = time.perf_counter() - start
    return reference_path, current_path, steps, profiled.rows


# --- the two sides, each run in a fresh process ---------------------------------------


def _memory() -> dict[str, float]:
    """This process's resident set now (VmRSS) and at its peak (VmHWM), in MB, from /proc.

    Not getrusage's ru_maxrss: in a child started by subprocess it carried the parent's peak (in a
    trial both sides read the parent's 426 MB there); VmHWM belongs to the child's own address space.
    """
    found: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found


def _side_medops(home: str, model: str, dataset: str) -> dict[str, Any]:
    start = time.perf_counter()
    from medops.caller import Caller
    from medops.services import Services
    from medops.workspace import Workspace

    ws = Workspace.open(Path(home))
    try:
        services = Services(ws)
        caller = Caller("admin")
        imports = time.perf_counter() - start
        warmup, first = timed(lambda: services.monitoring.run(caller, model, dataset="warmup"))
        before = _memory()["VmRSS"]
        seconds, result = timed(lambda: services.monitoring.run(caller, model, dataset=dataset))
        memory = _memory()
        (window,) = result.windows
        _, doc = services.monitoring.show(caller, window.id)  # after the measurement: the effect sizes
    finally:
        ws.close()
    effects = {}
    for name, feature in doc["features"].items():
        stats = {s["name"]: s["value"] for s in feature["statistics"] if "threshold" in s}
        effects[name] = {k: round(v, 4) for k, v in stats.items()}
    return {
        "seconds": seconds,
        "imports_seconds": imports,
        "warmup_seconds": warmup,
        "rss_before_mb": before,
        "peak_mb": memory["VmHWM"],
        "rows": window.rows,
        "drifted": sorted(window.drifted),
        "prediction_drifted": bool(doc["prediction"]["drifted"]),
        "alerts": [a.rule for a in [*first.alerts, *result.alerts]],
        "effects": effects,
    }


def _evidently_report(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Evidently's data drift preset with its per-column tests, as a dict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return dict(snapshot.dict())


def _side_evidently(reference: str, current: str) -> dict[str, Any]:
    start = time.perf_counter()
    import evidently
    import pyarrow.parquet as pq
    from evidently import DataDefinition, Dataset, Report  # noqa: F401  (imported before the timing)
    from evidently.presets import DataDriftPreset  # noqa: F401

    imports = time.perf_counter() - start

    def first_rows(path: str) -> pd.DataFrame:
        return next(pq.ParquetFile(path).iter_batches(batch_size=WARMUP_ROWS)).to_pandas()

    warmup, _ = timed(lambda: _evidently_report(first_rows(reference), first_rows(current)))
    before = _memory()["VmRSS"]
    start = time.perf_counter()
    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current)
    read = time.perf_counter() - start
    result = _evidently_report(ref, cur)
    seconds = time.perf_counter() - start
    memory = _memory()
    columns: dict[str, dict[str, Any]] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "score": round(float(metric["value"]), 4),
                "threshold": config["threshold"],
            }
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
    return {
        "seconds": seconds,
        "read_seconds": read,
        "imports_seconds": imports,
        "warmup_seconds": warmup,
        "rss_before_mb": before,
        "peak_mb": memory["VmHWM"],
        "rows": len(cur),
        "reference_rows": len(ref),
        "drifted": sorted(c for c, v in columns.items() if v.get("drifted")),
        "columns": columns,
        "version": evidently.__version__,
    }


def _in_subprocess(python: str, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "ITERATIVE_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}  # no telemetry from Evidently
    done = subprocess.run(
        [python, "-m", "benchmarks.bench_monitoring", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


# --- the comparison -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> float | None:
    """Prints the tables; returns Evidently's seconds over medops's (None when Evidently is not installed)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each of reference and current")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument(
        "--evidently-python",
        default=os.environ.get("EVIDENTLY_PYTHON", str(DEFAULT_EVIDENTLY)),
        help="the python of a virtual environment with evidently and pyarrow (default: $EVIDENTLY_PYTHON, "
        "else ../.evidently-venv/bin/python beside the repository)",
    )
    parser.add_argument("--side", choices=["medops", "evidently"], help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side == "medops":
        print("RESULT " + json.dumps(_side_medops(args.home, f"{MODEL}:{VERSION}", "current")))
        return None
    if args.side == "evidently":
        print("RESULT " + json.dumps(_side_evidently(args.reference, args.current)))
        return None
    if args.quick:
        args.rows = 100_000
    if not Path(args.evidently_python).exists():
        print(
            f"bench_monitoring: no Evidently environment at {args.evidently_python}; create one with "
            "`python3 -m venv ../.evidently-venv && ../.evidently-venv/bin/pip install evidently 'pandas<3' pyarrow` "
            "or pass --evidently-python"
        )
        return None

    with workspace("sqlite") as ws:
        base = Path(ws.settings.home).parent
        reference, current, steps, reference_rows = _prepare(ws, base, args.rows)
        medops_args = ["--side", "medops", "--home", str(ws.settings.home)]
        evidently_args = ["--side", "evidently", "--reference", str(reference), "--current", str(current)]
        medops_runs: list[dict[str, Any]] = []
        evidently_runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            medops_runs.append(_in_subprocess(sys.executable, medops_args))
            evidently_runs.append(_in_subprocess(args.evidently_python, evidently_args))

    print_table(
        f"One-off preparation, {args.rows:,} rows each side (not timed below)",
        ["step", "seconds"],
        [[step, f"{s:.1f}"] for step, s in steps.items()] + [["total", f"{sum(steps.values()):.1f}"]],
    )
    m_seconds = [r["seconds"] for r in medops_runs]
    e_seconds = [r["seconds"] for r in evidently_runs]
    print(
        "seconds per round, in order: medops",
        [round(t, 2) for t in m_seconds],
        "evidently",
        [round(t, 2) for t in e_seconds],
        "(of which Evidently's Parquet reads",
        [round(r["read_seconds"], 2) for r in evidently_runs],
        ")",
    )
    m, e = medops_runs[-1], evidently_runs[-1]
    m_time, e_time = statistics.median(m_seconds), statistics.median(e_seconds)
    m_peak = statistics.median(r["peak_mb"] for r in medops_runs)
    e_peak = statistics.median(r["peak_mb"] for r in evidently_runs)
    ratio = e_time / m_time
    print_table(
        f"Drift of {m['rows']:,} current rows against {reference_rows:,} reference rows, 20 columns "
        f"(median of {args.rounds} interleaved rounds, each in a fresh process)",
        ["", "seconds", "peak RSS (MB)", "RSS before the call (MB)", "imports, warm-up (s)", "drifted columns"],
        [
            [
                "medops monitor run --dataset",
                f"{m_time:.2f}",
                f"{m_peak:,.0f}",
                f"{m['rss_before_mb']:,.0f}",
                f"{m['imports_seconds']:.2f}, {m['warmup_seconds']:.2f}",
                ", ".join(m["drifted"]),
            ],
            [
                f"Evidently {e['version']} DataDriftPreset",
                f"{e_time:.2f}",
                f"{e_peak:,.0f}",
                f"{e['rss_before_mb']:,.0f}",
                f"{e['imports_seconds']:.2f}, {e['warmup_seconds']:.2f}",
                ", ".join(e["drifted"]),
            ],
            [
                "ratio Evidently / medops",
                f"{ratio:.1f}x (aim >= {AIM_RATIO:.0f}x: {'met' if ratio >= AIM_RATIO else 'NOT met'})",
                f"medops < {AIM_PEAK_MB:,.0f} MB: {'met' if m_peak < AIM_PEAK_MB else 'NOT met'}",
                "",
                "",
                "same set" if m["drifted"] == e["drifted"] else "sets DIFFER",
            ],
        ],
    )
    rows = []
    for name in COLUMNS:
        ev = e["columns"][name]
        mine = m["effects"][name]
        rows.append(
            [
                name + (" (shifted)" if name in SHIFTED else ""),
                "yes" if name in m["drifted"] else "",
                ", ".join(f"{k} {v:.3f}" for k, v in mine.items()),
                "yes" if ev.get("drifted") else "",
                f"{ev['method']} {ev['score']:.4f} (threshold {ev['threshold']})",
            ]
        )
    print_table("Per column: each side's verdict and effect sizes", ["column", "medops", "", "Evidently", ""], rows)
    print(
        f"medops also judged the scores: prediction drift {'flagged' if m['prediction_drifted'] else 'not flagged'};"
        " alerts opened in its first process (warm-up window included):",
        ", ".join(medops_runs[0]["alerts"]) or "none",
    )
    return ratio


if __name__ == "__main__":
    main()
