"""`medops run` on an unchanged project: the time to decide that nothing needs to run, against running the steps.

The readmission template (2,000 synthetic patients by default, six sources) in a fresh SQLite
workspace; a data scientist's API token in MEDOPS_TOKEN, as a scheduled job would have. One
`medops run` builds everything first (not timed into the medians: printed). Then, interleaved
in rounds, as fresh subprocesses (what a user or a scheduler waits for): `medops run` with
nothing changed (every step decided unchanged: its inputs hashed, its outputs checked); and
`medops run --force` of every step (the same steps doing their work: ingest, features,
training set, train, evaluate, register), the cost the cache saves. Medians; ratio = unchanged
/ forced. Aim (issue 20): under 2 s to decide that nothing needs to run.
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

from benchmarks.common import print_table, temp_dir

AIM_S = 2.0
PASSWORD = "bench-password-0123"


def _medops() -> list[str]:
    script = Path(sys.executable).with_name("medops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medops"]


def prepare(base: Path, patients: int) -> tuple[dict[str, str], Path]:
    """A workspace governed by the readmission template's project, and a data scientist's token."""
    from medops.identity import Role
    from medops.identity.keys import write_private_file
    from medops.services.projects.templates import scaffold
    from medops.workspace import init_workspace

    project = base / "project"
    scaffold(project, "readmission", patients=patients, seed=7)
    keys = base / "keys"
    os.environ["MEDOPS_KEY_DIR"] = str(keys)
    ws = init_workspace(
        base / "ws",
        admin_username="admin",
        admin_full_name="Bench Admin",
        admin_password=PASSWORD,
        key_dir=keys,
        project_file=str(project / "medops.yaml"),
    )
    with ws:
        import secrets

        write_private_file(Path(ws.settings.pseudonym_key_file), secrets.token_hex(32))
        ws.users.add("admin", "alice", "Alice", PASSWORD, [Role.DATA_SCIENTIST])
        _, secret = ws.tokens.create("admin", "bench", username="alice", expires_in_days=1)
    env = {**os.environ, "MEDOPS_HOME": str(base / "ws"), "MEDOPS_KEY_DIR": str(keys), "MEDOPS_TOKEN": secret}
    return env, project


def _once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=1800)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: stopped at a gate, a run that ended as it should
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-800:]}")
    return elapsed, done.stdout


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="400 patients, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.patients, args.rounds = 400, 2
    with temp_dir("medops-bench-pipeline-") as base:
        env, project = prepare(base, args.patients)
        run = [*_medops(), "run"]
        first, out = _once([*run, "--json"], env, project)
        steps = [s["step"] for s in json.loads(out)["steps"]]
        forced = [*run, *(f"--force={s}" for s in steps)]
        unchanged, everything = [], []
        for r in range(args.rounds):
            order = [("unchanged", run), ("forced", forced)]
            for name, argv_ in order if r % 2 == 0 else order[::-1]:
                seconds, out = _once(argv_, env, project)
                if name == "unchanged":
                    assert " 0 ran," in out, out[-500:]
                    unchanged.append(seconds)
                else:
                    everything.append(seconds)
    result = {
        "patients": args.patients,
        "first_run_s": first,
        "unchanged_s": statistics.median(unchanged),
        "forced_s": statistics.median(everything),
        "rounds": args.rounds,
        "unchanged_rounds": unchanged,
        "forced_rounds": everything,
    }
    ratio = result["unchanged_s"] / result["forced_s"]
    print_table(
        f"medops run, readmission template, {args.patients:,} patients ({len(steps)} steps; medians of {args.rounds})",
        ["run", "seconds", "ratio"],
        [
            ["first run (builds everything)", f"{first:.2f}", ""],
            ["unchanged: every step decided, none run", f"{result['unchanged_s']:.2f}", f"{ratio:.3f}"],
            ["--force every step (the steps doing their work)", f"{result['forced_s']:.2f}", "1"],
        ],
    )
    met = "met" if result["unchanged_s"] < AIM_S else "NOT met"
    print(f"aim: under {AIM_S:.0f} s to decide nothing needs to run: {result['unchanged_s']:.2f} s ({met})")
    print("per round, unchanged: " + ", ".join(f"{s:.2f}" for s in unchanged))
    print("per round, forced:    " + ", ".join(f"{s:.2f}" for s in everything))
    return result


if __name__ == "__main__":
    main()
