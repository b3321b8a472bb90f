"""What anchoring the audit trail costs on the public paths that write: a signed checkpoint per commit.

Every committed batch of audit events publishes a signed checkpoint to the checkpoint
store, so every write pays one Ed25519 signature and one small write-once file. Timed on
the paths a user meets:

1. ``AuditTrail.record``: one event per transaction, in process (the floor of every change).
2. ``medops.start_run``: a run opened, 100 metric values and 5 parameters logged, ended.
3. ``medops user add`` and ``medops audit verify`` on the command line, each a fresh
   process (what a user waits for at the prompt), medians of rounds interleaved in a rotating
   order (``common.interleaved``), each command once untimed first (the file cache).

The script paths act as the admin through an API token (MEDOPS_TOKEN), as a user's script or
shell would. There is no peer to compare with; the load average is printed at the start and
the end.

Run it once on the code before the change and once after (same machine, same sizes) and
compare; docs/benchmarks.md keeps the two.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.common import PASSWORD, environment, interleaved, load_average, medians, print_table, timed, workspace


def _record(ws: Any, n: int) -> float:
    from medops.audit import NewEvent

    seconds, _ = timed(lambda: [ws.trail.record(NewEvent("admin", "bench.event", "thing", str(i))) for i in range(n)])
    return seconds / n


def _runs(ws: Any, n: int, token: str) -> float:
    import medops

    def many() -> None:
        for i in range(n):
            with medops.start_run("bench", f"run-{i}") as run:
                for p in range(5):
                    run.log_param(f"p{p}", p)
                for step in range(100):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)

    try:
        with environment({"MEDOPS_HOME": str(ws.settings.home), "MEDOPS_TOKEN": token}, ws.settings.home):
            seconds, _ = timed(many)
    finally:
        medops._close_trackers()  # the workspace is removed next: let go of its connections
    return seconds / n


def _cli(ws: Any, rounds: int, token: str) -> dict[str, float]:
    env = {**os.environ, "MEDOPS_HOME": str(ws.settings.home), "MEDOPS_TOKEN": token}
    medops = [sys.executable, "-m", "medops"]
    counter = iter(range(1_000_000))

    def user_add() -> list[str]:
        return [*medops, "user", "add", f"bench{next(counter)}", "--name", "Bench User", "--password-stdin"]

    def command(name: str, argv: Callable[[], list[str]]) -> Callable[[], None]:
        def run() -> None:
            done = subprocess.run(argv(), env=env, input=PASSWORD + "\n", capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed: {done.stderr[-500:]}")

        return run

    commands = {"medops user add": user_add, "medops audit verify": lambda: [*medops, "audit", "verify"]}
    return medians(interleaved({name: command(name, argv) for name, argv in commands.items()}, rounds))


def run_backend(backend: str, events: int, runs: int, rounds: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    with workspace(backend) as ws:
        _, token = ws.tokens.create("admin", "bench", expires_in_days=1)
        rows.append([f"{backend}: AuditTrail.record, 1 event/txn", events, f"{_record(ws, events) * 1000:.2f} ms"])
        per_run = _runs(ws, runs, token)
        rows.append([f"{backend}: medops.start_run, 5 params + 100 metrics", runs, f"{per_run * 1000:.1f} ms"])
        for name, seconds in _cli(ws, rounds, token).items():
            rows.append([f"{backend}: {name} (CLI process)", rounds, f"{seconds:.3f} s"])
    return rows


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.runs, args.rounds = 100, 5, 3
    print(f"load average at start: {load_average()}")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    rows: list[list[Any]] = []
    for backend in backends:
        rows += run_backend(backend, args.events, args.runs, args.rounds)
    print_table("audit anchoring: writes with a signed checkpoint per commit", ["path", "n", "time each"], rows)
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
