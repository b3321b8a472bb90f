"""Synthetic data: time to generate N patients (aim: 1,000,000 in under 30 s on 2 cores),
and to write them as Parquet, against pandas writing the same frames directly.

Generating has no peer and is timed once. Writing: medops's ``write(data, folder, "parquet")``
(what ``medops synth --format parquet`` runs: each table to a temporary folder, then moved into
place) against pandas's ``to_parquet`` of the same frames, its default (pyarrow, snappy) and its
fastest documented setting (``compression=None``: no codec, larger files). The three sides run
interleaved in a rotating order over ``--rounds`` rounds (``common.interleaved``), each once
untimed first, each into a fresh folder; medians reported, with the load average at the start
and the end. Ratio = medops / pandas."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import interleaved, load_average, medians, print_table, temp_dir, timed


def main(argv: list[str] | None = None) -> list[list[Any]]:
    from medops.synth import generate, write

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the writes (medians)")
    parser.add_argument("--quick", action="store_true", help="100,000 patients")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.patients
    print(f"load average at start: {load_average()}")
    t_gen, data = timed(lambda: generate(n, seed=1))
    tables = data.tables()
    rows = sum(len(f) for f in tables.values())
    with temp_dir("medops-bench-synth-") as base:

        def fresh() -> Path:
            return base / uuid.uuid4().hex

        def plain(**options: Any) -> None:
            out = fresh()
            out.mkdir()
            for k, f in tables.items():
                f.to_parquet(out / f"{k}.parquet", index=False, **options)

        times = interleaved(
            {
                "medops": lambda: write(data, fresh(), "parquet"),
                "pandas": plain,
                "fastest": lambda: plain(compression=None),
            },
            args.rounds,
        )
        written = sorted(p.name for p in next(base.iterdir()).rglob("*.parquet"))
        assert written == sorted(f"{k}.parquet" for k in tables), written
    med = medians(times)
    result = [
        [f"generate {n:,} patients", f"{rows:,} rows", f"{t_gen:.1f} s", "", "", "", ""],
        [
            "write Parquet",
            f"{rows:,} rows",
            f"{med['medops']:.2f} s",
            f"{med['pandas']:.2f} s",
            f"{med['medops'] / med['pandas']:.2f}",
            f"{med['fastest']:.2f} s",
            f"{med['medops'] / med['fastest']:.2f}",
        ],
    ]
    print_table(
        f"synthetic data (writes: medians of {args.rounds} interleaved rounds)",
        ["benchmark", "size", "medops", "pandas to_parquet", "ratio", "compression=None (fastest)", "ratio vs fastest"],
        result,
    )
    print("pandas: default to_parquet = pyarrow + snappy; fastest documented = compression=None (no codec)")
    print(f"load average at end: {load_average()}")
    return result


if __name__ == "__main__":
    main()
