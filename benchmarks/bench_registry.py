"""Loading a model bundle and its first prediction, against plain LightGBM.

The model is the demo's: `medops demo` runs (into a temporary folder) and its registered
LightGBM version is exported as a bundle. medops side: ``load_model(path)`` (read the file,
check every member, verify the manifest's signature and every checksum, rebuild the
pipeline from skops with only safe types) and the first ``predict_proba`` on one patient's
row (input checks, preprocessing, LightGBM). Plain side: the same booster saved as a
LightGBM text file, ``lightgbm.Booster(model_file=...)`` and ``predict`` on the same row,
already preprocessed (what a user holding only the LightGBM model would run).

Two settings, each the median of ``--repeats``:
- warm: in this process, imports done, each load from the file again;
- cold: a fresh Python process per load (interpreter, imports, load, first prediction),
  timed from outside, as a serving process starting would see it.

Aim: medops within 1.5x of plain LightGBM (ratio = medops / plain).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir

AIM = 1.5

MEDOPS_COLD = """
import sys, time
t0 = time.perf_counter()
import pandas as pd
from medops.registry.predictor import load_bundle_file
predictor = load_bundle_file(sys.argv[1], sys.argv[2])
row = pd.read_parquet(sys.argv[3])
predictor.predict_proba(row)
print(time.perf_counter() - t0)
"""

PLAIN_COLD = """
import sys, time
t0 = time.perf_counter()
import lightgbm, numpy as np
booster = lightgbm.Booster(model_file=sys.argv[1])
booster.predict(np.load(sys.argv[2]))
print(time.perf_counter() - t0)
"""


def _demo_bundle(base: Path) -> tuple[Path, Path, Path, Path, str]:
    """The demo's registered model: its bundle, the booster as text, one row raw and preprocessed, the key."""
    import numpy as np

    from medops.demo import run_demo
    from medops.registry.predictor import load_model
    from medops.registry.transfer import export, public_key
    from medops.registry.versions import models
    from medops.workspace import Workspace

    result = run_demo(base / "demo")
    with Workspace.open(result.home) as ws:
        name = models(ws)[0]["name"]
        bundle = base / "model.medops"
        info = export(ws, name, bundle, actor="ada")  # the demo's first admin
        predictor = load_model(ws, bundle)
        key = public_key(ws)
        from medops.training import Tracker, stored

        run = Tracker(ws).get(str(info.run_id))
        frame = stored.training_frame(Tracker(ws), run, stored.recipe(Tracker(ws), run))
    inside = frame[predictor.features]
    row = inside[~predictor.schema.flagged(inside)].iloc[[0]].reset_index(drop=True)  # a row the checks accept
    raw = base / "row.parquet"
    row.to_parquet(raw)
    text = base / "booster.txt"
    text.write_bytes(predictor.bundle.file("model.txt"))  # the very booster the bundle carries
    matrix = base / "row.npy"
    assert predictor.compiled is not None
    np.save(matrix, predictor.compiled.matrix(row))  # the row as the pipeline's preprocessing makes it
    return bundle, text, raw, matrix, key


def _warm(bundle: Path, text: Path, raw: Path, matrix: Path, key: str, repeats: int) -> dict[str, list[float]]:
    import lightgbm
    import numpy as np
    import pandas as pd

    from medops.registry.predictor import load_bundle_file

    row, features = pd.read_parquet(raw), np.load(matrix)
    times: dict[str, list[float]] = {"medops load": [], "medops first": [], "plain load": [], "plain first": []}
    for _ in range(repeats + 1):  # the first round warms the caches and is dropped
        t0 = time.perf_counter()
        predictor = load_bundle_file(str(bundle), key)
        t1 = time.perf_counter()
        predictor.predict_proba(row)
        t2 = time.perf_counter()
        booster = lightgbm.Booster(model_file=str(text))
        t3 = time.perf_counter()
        booster.predict(features)
        t4 = time.perf_counter()
        for name, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[name].append(value)
    return {k: v[1:] for k, v in times.items()}


def _cold(script: str, args: list[str], repeats: int) -> list[float]:
    out = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        out.append(wall)
    return out


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="warm loads per side (cold: a quarter)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args(argv)
    repeats = 4 if args.quick else args.repeats
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with temp_dir("medops-bench-registry-") as base:
        bundle, text, raw, matrix, key = _demo_bundle(base)
        warm = _warm(bundle, text, raw, matrix, key, repeats)
        cold_repeats = max(3, repeats // 4)
        cold_medops = _cold(MEDOPS_COLD, [str(bundle), key, str(raw)], cold_repeats)
        cold_plain = _cold(PLAIN_COLD, [str(text), str(matrix)], cold_repeats)
        sizes = (bundle.stat().st_size, text.stat().st_size)
    med = {k: statistics.median(v) * 1e3 for k, v in warm.items()}
    warm_medops, warm_plain = med["medops load"] + med["medops first"], med["plain load"] + med["plain first"]
    cold = statistics.median(cold_medops) * 1e3, statistics.median(cold_plain) * 1e3

    def verdict(ratio: float) -> str:
        return f"<= {AIM:g}x: {'ok' if ratio <= AIM else 'MISSED'}"

    rows: list[list[Any]] = [
        ["warm: load", f"{med['medops load']:.1f} ms", f"{med['plain load']:.1f} ms", "", ""],
        ["warm: first prediction (one row)", f"{med['medops first']:.2f} ms", f"{med['plain first']:.2f} ms", "", ""],
        [
            "warm: load + first prediction",
            f"{warm_medops:.1f} ms",
            f"{warm_plain:.1f} ms",
            f"{warm_medops / warm_plain:.2f}x",
            verdict(warm_medops / warm_plain),
        ],
        [
            "cold process: start, imports, load, first prediction",
            f"{cold[0]:.0f} ms",
            f"{cold[1]:.0f} ms",
            f"{cold[0] / cold[1]:.2f}x",
            verdict(cold[0] / cold[1]),
        ],
    ]
    print_table(
        f"bundle load and first prediction, demo LightGBM model (bundle {sizes[0]:,} B, booster text {sizes[1]:,} B); "
        f"median of {repeats} warm, {cold_repeats} cold",
        ["benchmark", "medops load_model", "lightgbm.Booster", "ratio", "aim"],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
