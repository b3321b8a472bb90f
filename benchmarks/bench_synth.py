"""Synthetic data: time to generate N patients (aim: 1,000,000 in under 30 s on 2 cores),
and to write them as Parquet, against pandas writing the same frames directly."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.common import print_table, temp_dir, timed


def main(argv: list[str] | None = None) -> list[list[Any]]:
    from medops.synth import generate, write

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 patients")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.patients
    t_gen, data = timed(lambda: generate(n, seed=1))
    rows = sum(len(f) for f in data.tables().values())
    with temp_dir("medops-bench-synth-") as base:
        t_write, _ = timed(lambda: write(data, base / "medops", "parquet"))
        (base / "raw").mkdir()
        t_raw, _ = timed(
            lambda: [f.to_parquet(base / "raw" / f"{k}.parquet", index=False) for k, f in data.tables().items()]
        )
    result = [
        [f"generate {n:,} patients", f"{rows:,} rows", f"{t_gen:.1f} s", "", ""],
        ["write Parquet", f"{rows:,} rows", f"{t_write:.1f} s", f"{t_raw:.1f} s", f"{t_write / t_raw:.2f}"],
    ]
    print_table("synthetic data", ["benchmark", "size", "medops", "pandas to_parquet", "ratio"], result)
    return result


if __name__ == "__main__":
    main()
