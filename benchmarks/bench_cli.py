"""CLI start-up: `medops --version`, `--help` and two read-only commands, against MLflow's CLI.

Each command runs as a fresh subprocess (what a user waits for at the prompt), wall time
from spawn to exit. The rounds are interleaved in a rotating order, so a busy moment of the
machine lands on every command alike; the table shows medians. The read-only commands run
against a small SQLite workspace (an admin and the events of its creation). Two floors:
`python -c pass`, the interpreter alone, and importing the libraries every workspace command
needs (typer, which converts option values with pydantic, and SQLAlchemy's ORM).
Ratio = command / `mlflow --version`, both in this run (below 1: medops answers sooner).
Aims: under 0.3 s for --version and --help, under 0.6 s for a read-only command.

MLflow comes from the venv the tracking benchmark uses (made when missing; never the
project's environment). If it can't be installed, its rows say so and the medops rows still run.
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

from benchmarks.bench_tracking import DEFAULT_VENV, ensure_mlflow
from benchmarks.common import print_table, workspace

AIMS = {"--version": 0.3, "--help": 0.3, "audit log": 0.6, "models list": 0.6}
FLOOR = "import typer, pydantic, sqlalchemy.orm"  # what any workspace command loads before medops's own code


def _medops() -> list[str]:
    script = Path(sys.executable).with_name("medops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medops"]


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def measure(commands: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median wall time of each command, over ``rounds`` interleaved rounds after one warm-up each."""
    names = list(commands)
    for name in names:  # warm the file cache: every command starts from the same state
        _once(commands[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_once(commands[name], env))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_VENV, help="the MLflow venv (made if missing)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    mlflow_python, mlflow_note = ensure_mlflow(args.mlflow_venv)
    medops = _medops()
    with workspace("sqlite") as ws:
        # an admin's API token: reading the audit log needs a verified user, as it does for a person
        _, token = ws.tokens.create("admin", "bench-cli", expires_in_days=1)
        env = {**os.environ, "MEDOPS_HOME": str(ws.settings.home), "MEDOPS_TOKEN": token}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python: import typer, pydantic, sqlalchemy.orm": [sys.executable, "-c", FLOOR],
            **{f"medops {c}": [*medops, *c.split()] for c in AIMS},
        }
        if mlflow_python is not None:
            commands["mlflow --version"] = [str(mlflow_python.with_name("mlflow")), "--version"]
            commands["mlflow --help"] = [str(mlflow_python.with_name("mlflow")), "--help"]
        medians = measure(commands, env, rounds)
    peer = medians.get("mlflow --version")
    rows: list[list[Any]] = []
    for name, seconds in medians.items():
        aim = AIMS.get(name.removeprefix("medops "))
        verdict = "" if aim is None else f"< {aim:.1f} s: {'met' if seconds < aim else 'MISSED'}"
        ratio = f"{seconds / peer:.2f}" if peer else "n/a"
        rows.append([name, f"{seconds:.3f} s", ratio, verdict])
    if mlflow_python is None:
        rows.append(["mlflow --version", mlflow_note, "", ""])
    title = f"CLI start-up, median of {rounds} interleaved rounds ({mlflow_note})"
    print_table(title, ["command", "median", "vs mlflow --version", "aim"], rows)
    return rows


if __name__ == "__main__":
    main()
