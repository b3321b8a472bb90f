"""Loading a model bundle and its first prediction, against plain LightGBM.

The model is the demo's: `medops demo` runs (into a temporary folder) and its registered
LightGBM version is exported as a bundle. Each side loads the model and makes its first
prediction on one patient's row:
- medops ``medops.load_model(path)``, the public path a script calls: the workspace of
  MEDOPS_HOME (the demo's) opened for its trusted keys, the file read, every member checked,
  the manifest's signature and every checksum verified, the model rebuilt with only safe
  types; then the first ``predict_proba`` on the raw row (input checks, preprocessing,
  LightGBM);
- medops ``load_bundle_file(path, public_key)``, the same outside any workspace (what a
  serving process or container start runs);
- LightGBM's default: the same booster saved as a LightGBM text file,
  ``lightgbm.Booster(model_file=...)`` and ``predict`` on the same row, already preprocessed
  (what a user holding only the LightGBM model would run);
- LightGBM's fastest documented mode for one row: the same load, then its single-row C entry
  point (``LGBM_BoosterPredictForMatSingleRowFastInit`` once per booster, then
  ``LGBM_BoosterPredictForMatSingleRowFast``; the R package wraps it as
  ``lgb.configure_fast_predict``, the Python package does not, so it is called through the
  library the package loaded). Loading has no faster documented mode than the model's text
  (``model_file=`` or ``model_str=``, the same parser).
Both medops sides get the one-off preparation a user has (the workspace, or its public key);
the LightGBM sides get theirs (the booster's text file, the row as a float64 matrix). The
probabilities of every side are checked to agree.

Two settings, the sides interleaved in a rotating order over the rounds (each side once
untimed first), medians reported, the load average printed at the start and the end:
- warm: in this process, imports done, each load from the file again (``--repeats`` rounds);
- cold: a fresh Python process per load (interpreter, imports, load, first prediction),
  timed from outside, as a serving process starting would see it (a quarter of the rounds).

Aim: medops ``load_model`` within 1.5x of LightGBM's default (ratio = medops / LightGBM);
the ratio against LightGBM's fastest mode is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import environment, interleaved, load_average, medians, print_table, temp_dir

AIM = 1.5

# LightGBM's single-row C entry point, prepared once per booster; run in this process and in the cold ones
FAST_PREDICT = """
import ctypes
import numpy as np
from lightgbm import basic

def fast_predict(booster, matrix):
    lib, config = basic._LIB, ctypes.c_void_p()
    row = np.ascontiguousarray(matrix[0], dtype=np.float64)
    basic._safe_call(lib.LGBM_BoosterPredictForMatSingleRowFastInit(
        booster._handle, ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(1),
        ctypes.c_int32(row.shape[0]), basic._c_str("num_threads=1"), ctypes.byref(config)))
    out, length = ctypes.c_double(), ctypes.c_int64()
    try:
        basic._safe_call(lib.LGBM_BoosterPredictForMatSingleRowFast(
            config, row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(length), ctypes.byref(out)))
    finally:
        lib.LGBM_FastConfigFree(config)
    return out.value
"""

COLD = {
    "medops load_model": """
import sys
from pathlib import Path
import pandas as pd
import medops
medops.load_model(Path(sys.argv[1])).predict_proba(pd.read_parquet(sys.argv[3]))
""",
    "medops load_bundle_file": """
import sys
import pandas as pd
from medops.registry.predictor import load_bundle_file
load_bundle_file(sys.argv[1], sys.argv[2]).predict_proba(pd.read_parquet(sys.argv[3]))
""",
    "lightgbm default": """
import sys
import lightgbm, numpy as np
lightgbm.Booster(model_file=sys.argv[4]).predict(np.load(sys.argv[5]))
""",
    "lightgbm fastest": """
import sys
import lightgbm, numpy as np
"""
    + FAST_PREDICT
    + """
fast_predict(lightgbm.Booster(model_file=sys.argv[4]), np.load(sys.argv[5]))
""",
}


def _demo_bundle(base: Path) -> tuple[Path, Path, Path, Path, Path, str]:
    """The demo's registered model: its workspace, its bundle, the booster as text, one row raw and
    preprocessed, the workspace's public key."""
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
    return result.home, bundle, text, raw, matrix, key


Files = tuple[Path, Path, Path, Path, Path, str]  # workspace, bundle, booster text, raw row, row matrix, key


def _warm(files: Files, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Per side: the seconds of load + first prediction, of the load alone, and the probability it gave."""
    import lightgbm
    import numpy as np
    import pandas as pd

    import medops
    from medops.registry.predictor import load_bundle_file

    home, bundle, text, raw, matrix, key = files
    row, features = pd.read_parquet(raw), np.load(matrix)
    scope: dict[str, Any] = {}
    exec(FAST_PREDICT, scope)
    fast_predict = scope["fast_predict"]
    loads: dict[str, list[float]] = {}
    answers: dict[str, float] = {}

    def side(name: str, load: Callable[[], Any], first: Callable[[Any], Any]) -> Callable[[], None]:
        loads[name] = []

        def run() -> None:
            start = time.perf_counter()
            model = load()
            loads[name].append(time.perf_counter() - start)
            answers[name] = float(np.ravel(first(model))[0])

        return run

    sides = {
        "medops load_model": side(
            "medops load_model", lambda: medops.load_model(bundle), lambda p: p.predict_proba(row)
        ),
        "medops load_bundle_file": side(
            "medops load_bundle_file", lambda: load_bundle_file(str(bundle), key), lambda p: p.predict_proba(row)
        ),
        "lightgbm default": side(
            "lightgbm default", lambda: lightgbm.Booster(model_file=str(text)), lambda b: b.predict(features)
        ),
        "lightgbm fastest": side(
            "lightgbm fastest", lambda: lightgbm.Booster(model_file=str(text)), lambda b: fast_predict(b, features)
        ),
    }
    with environment({"MEDOPS_HOME": str(home)}, home):  # as a script in the workspace would run
        times = interleaved(sides, rounds)
    return times, {name: values[1:] for name, values in loads.items()}, answers  # [0]: the untimed warm-up


def _cold(files: Files, rounds: int) -> dict[str, list[float]]:
    home, bundle, text, raw, matrix, key = files
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MEDOPS_HOME": str(home)}
    args = [str(bundle), key, str(raw), str(text), str(matrix)]

    def side(script: str) -> Callable[[], None]:
        def run() -> None:
            done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])

        return run

    return interleaved({name: side(script) for name, script in COLD.items()}, rounds)  # warm-up: the file cache


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="warm rounds (cold: a quarter, at least 3)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args(argv)
    repeats = 4 if args.quick else args.repeats
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    with temp_dir("medops-bench-registry-") as base:
        files = _demo_bundle(base)
        warm_times, warm_loads, answers = _warm(files, repeats)
        cold_repeats = max(3, repeats // 4)
        cold_times = _cold(files, cold_repeats)
        sizes = (files[1].stat().st_size, files[2].stat().st_size)
    reference = answers["lightgbm default"]
    for name, value in answers.items():  # every side scored the same row alike
        assert abs(value - reference) < 1e-9, (name, value, reference)
    names = list(COLD)
    warm = {k: v * 1e3 for k, v in medians(warm_times).items()}
    load = {k: v * 1e3 for k, v in medians(warm_loads).items()}
    first = {k: warm[k] - load[k] for k in names}  # the medians' difference: a round's own split varies
    cold = {k: v * 1e3 for k, v in medians(cold_times).items()}
    ours, default, fastest = "medops load_model", "lightgbm default", "lightgbm fastest"

    def verdict(ratio: float) -> str:
        return f"<= {AIM:g}x: {'ok' if ratio <= AIM else 'MISSED'}"

    def row(label: str, values: dict[str, float], fmt: str, judged: bool) -> list[Any]:
        cells = [f"{values[k]:{fmt}} ms" for k in names]
        if not judged:
            return [label, *cells, "", "", "", ""]
        ratio = values[ours] / values[default]
        return [
            label,
            *cells,
            f"{ratio:.2f}x",
            f"{values[ours] / values[fastest]:.2f}x",
            f"{values['medops load_bundle_file'] / values[default]:.2f}x",
            verdict(ratio),
        ]

    rows: list[list[Any]] = [
        row("warm: load", load, ".1f", False),
        row("warm: first prediction (one row)", first, ".2f", False),
        row("warm: load + first prediction", warm, ".1f", True),
        row("cold process: start, imports, load, first prediction", cold, ",.0f", True),
    ]
    print_table(
        f"bundle load and first prediction, demo LightGBM model (bundle {sizes[0]:,} B, booster text {sizes[1]:,} B); "
        f"medians of {repeats} warm, {cold_repeats} cold interleaved rounds",
        [
            "benchmark",
            "medops.load_model",
            "load_bundle_file",
            "lightgbm default",
            "lightgbm fastest",
            "ratio",
            "vs fastest",
            "bundle_file ratio",
            "aim",
        ],
        rows,
    )
    print(
        "ratio = medops.load_model / lightgbm default; vs fastest = medops.load_model / lightgbm fastest; "
        "bundle_file ratio = load_bundle_file / lightgbm default.\n"
        "LightGBM: default = Booster(model_file=...) + predict; fastest documented mode for one row = the same "
        "load + its single-row C entry point (LGBM_BoosterPredictForMatSingleRowFast), not wrapped by the "
        "Python package; loading has no faster documented mode than the text model"
    )
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
