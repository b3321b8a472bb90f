"""The whole lifecycle demo's wall time: `medops demo`, as the README's first command runs it.

Each round is a fresh `medops demo --dir DIR --json` subprocess (interpreter start, imports, the
whole story to the retrained challenger swapped into a serving server, the tamper tests, teardown),
into its own new folder. Medians of the rounds, with the load average before and after. Then one
in-process run whose steps are timed by the demo's own progress callback (the time from one printed
step to the next, summed by phase): where the time goes. No peer does this story; the aim (issue 20)
is under 2 minutes on 2 cores.
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

AIM_S = 120.0
# The phase each printed step belongs to: the first step of a phase opens it.
PHASES = {
    "init": "governance: workspace, team, signatures, tokens, denials",
    "synthetic data": "data: the first extract, ingest, contracts, de-identification",
    "features apply": "features: views, training set, online store, consistency",
    "train": "training: baseline, reproduce, 12 Optuna trials",
    "evaluate baseline": "validation: two evaluations, reports",
    "register": "registry: register, signatures, promotion, bundle",
    "promote": "serving: the HTTP server, explain, rollback swap, log, replay",
    "production months": "production: six months logged, the latest extract, monitoring",
    "retraining": "retraining: the pipeline, challenger, signatures, swap",
    "alert acknowledged": "the alert acknowledged, the monitoring report",
    "audit verify": "audit: verify, state check, tamper tests",
}


def _medops() -> list[str]:
    script = Path(sys.executable).with_name("medops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medops"]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cli_rounds(rounds: int) -> list[float]:
    seconds = []
    with temp_dir("medops-bench-demo-") as base:
        for i in range(rounds):
            env = {k: v for k, v in os.environ.items() if not k.startswith("MEDOPS_")}
            start = time.perf_counter()
            done = subprocess.run([*_medops(), "demo", "--dir", str(base / f"r{i}"), "--json"], env=env,
                                  capture_output=True, text=True, check=False)  # fmt: skip
            seconds.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"medops demo failed:\n{done.stderr[-2000:]}")
            print(f"  round {i + 1}: {seconds[-1]:.1f} s", flush=True)
    return seconds


def phases() -> tuple[list[tuple[str, float]], int]:
    """One in-process run; the seconds from each printed step to the next, summed by phase, and the
    DuckDB databases it opened (each ``duckdb.connect``: about 12 ms, and a thread pool and memory
    limit of its own)."""
    import duckdb

    from medops.demo import run_demo

    for name in [n for n in os.environ if n.startswith("MEDOPS_")]:
        del os.environ[name]
    spent: dict[str, float] = {}
    current, last = PHASES["init"], time.perf_counter()
    begun = last

    def say(step: str, _outcome: str) -> None:
        nonlocal current, last
        now = time.perf_counter()
        spent[current] = spent.get(current, 0.0) + now - last
        last = now
        if step in PHASES and not (step == "promote" and current != PHASES["register"]):
            current = PHASES[step]

    opened = 0
    connect = duckdb.connect

    def counted(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        nonlocal opened
        opened += 1
        return connect(*args, **kwargs)

    duckdb.connect = counted
    try:
        with temp_dir("medops-bench-demo-") as base:
            run_demo(base / "demo", say=say)
    finally:
        duckdb.connect = connect
    spent[current] = spent.get(current, 0.0) + time.perf_counter() - last
    spent["total (in process)"] = time.perf_counter() - begun
    return list(spent.items()), opened


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="`medops demo` subprocesses (medians)")
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process run timed by phase")
    parser.add_argument("--quick", action="store_true", help="one round, no phases")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.no_phases = 1, True
    before = _load()
    print(f"medops demo, {args.rounds} rounds (load average {before})", flush=True)
    seconds = cli_rounds(args.rounds)
    after = _load()
    median = statistics.median(seconds)
    print_table(
        "`medops demo`, the README's first command (2 cores)",
        ["rounds", "median s", "min s", "max s", "aim", "load before", "load after"],
        [[len(seconds), f"{median:.1f}", f"{min(seconds):.1f}", f"{max(seconds):.1f}",
          f"< {AIM_S:.0f} s: {'met' if median < AIM_S else 'NOT met'}", before, after]],
    )  # fmt: skip
    if not args.no_phases:
        spent, opened = phases()
        print_table("where the time goes (one in-process run)", ["phase", "s"],
                    [[name, f"{s:.1f}"] for name, s in spent])  # fmt: skip
        print_table("DuckDB databases the in-process run opened", ["opened", "aim"],
                    [[opened, f"<= 2 (one workspace's pair): {'met' if opened <= 2 else 'NOT met'}"]])  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
