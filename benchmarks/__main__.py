"""Run every benchmark: `python -m benchmarks [--quick] [--only NAME ...] [--json FILE] [--compare FILE]`;
`python -m benchmarks --markdown FILE` prints a run's tables as Markdown, for docs/benchmarks.md.

Every table the benchmarks print is also written as JSON (to benchmarks/results/ unless --json says
where), with the machine, the load average at the start and the end and the versions of the peers'
libraries found here. ``--compare FILE`` then prints, for every number of every row that both runs
have, the change against that earlier run, marking those that moved by more than 10 %, so a
regression shows without reading two tables side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_artifacts,
    bench_audit,
    bench_auth,
    bench_checkpoints,
    bench_cli,
    bench_dashboard,
    bench_deid_text,
    bench_demo,
    bench_evaluation,
    bench_features,
    bench_grid_bins,
    bench_ingest,
    bench_monitoring,
    bench_monitoring_log,
    bench_online,
    bench_pipeline,
    bench_platform_server,
    bench_registry,
    bench_report,
    bench_scoring,
    bench_serving,
    bench_synth,
    bench_tracking,
)
from benchmarks.common import RECORDED, load_average, print_table

# In the order of a full run, each with the options the full run gives it.
BENCHMARKS: dict[str, tuple[Callable[[list[str]], Any], list[str]]] = {
    "audit": (bench_audit.main, []),
    "checkpoints": (bench_checkpoints.main, []),
    "artifacts": (bench_artifacts.main, []),
    "synth": (bench_synth.main, []),
    "ingest": (bench_ingest.main, []),
    "deid_text": (bench_deid_text.main, []),
    "online": (bench_online.main, []),
    "features": (bench_features.main, []),
    "tracking": (bench_tracking.main, []),
    "evaluation": (bench_evaluation.main, []),
    "registry": (bench_registry.main, []),
    "report": (bench_report.main, []),
    "scoring": (bench_scoring.main, []),
    "grid_bins": (bench_grid_bins.main, []),
    "monitoring": (bench_monitoring.main, []),  # needs an Evidently environment (see its --help)
    "monitoring_log": (bench_monitoring_log.main, []),  # writes 10M log rows first (about 6 minutes, 9 GB)
    "serving": (bench_serving.main, ["--no-scoring"]),  # batch scoring ran in "scoring"
    "cli": (bench_cli.main, []),
    "auth": (bench_auth.main, []),
    "pipeline": (bench_pipeline.main, []),
    "platform_server": (bench_platform_server.main, []),
    "dashboard": (bench_dashboard.main, []),
    "demo": (bench_demo.main, []),
}
PEERS = (
    "mlflow",
    "mlflow-skinny",
    "evidently",
    "lightgbm",
    "scikit-learn",
    "fairlearn",
    "duckdb",
    "pandas",
    "pyarrow",
    "numpy",
    "redis",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "psycopg",
)
CHANGE_MARK = 0.10  # a number that moved by more than this share is marked
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def machine() -> dict[str, Any]:
    """What the numbers depend on: cores, Python, the OS, and the versions of the libraries installed here
    (a peer run in a venv of its own, as MLflow is, prints its version in its own table)."""
    versions = {}
    for name in ("medops", *PEERS):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions,
    }


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)


def number(cell: str) -> float | None:
    """The first number in a printed cell ("1,234.5 s", "3.9x", "12 %"), or None."""
    found = _NUMBER.search(cell)
    return None if found is None else float(found.group().replace(",", ""))


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[list[str]]:
    """One line per number in both runs, matched by table title, row label and column name."""
    before = {
        (t["title"], row[0], col): cell
        for t in old["tables"]
        for row in t["rows"]
        for col, cell in zip(t["header"], row, strict=False)
    }
    out = []
    for table in new["tables"]:
        for row in table["rows"]:
            for col, cell in list(zip(table["header"], row, strict=False))[1:]:
                was = before.get((table["title"], row[0], col))
                a, b = (None, None) if was is None else (number(was), number(cell))
                if a is None or b is None:
                    continue
                moved = (b - a) / a if a else (0.0 if b == a else float("inf"))
                mark = "!" if abs(moved) > CHANGE_MARK else ""
                out.append(
                    [f"{table['title'][:60]} | {row[0]}", col, was, cell, f"{moved * 100:+.1f} % {mark}".rstrip()]
                )
    return out


def markdown(run: dict[str, Any]) -> str:
    """A run's machine, load and tables as Markdown: what docs/benchmarks.md is written from."""
    m = run["machine"]
    lines = [
        f"Run {run['started']} to {run['ended']}{' (--quick)' if run.get('quick') else ''}: {m['cpus']} cores, "
        f"{m['processor']}, {m.get('memory_gib', '?')} GiB, Python {m['python']}, {m['platform']}; "
        f"load average {run['load_average']['start']} at the start, {run['load_average']['end']} at the end.",
        "",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in m["versions"].items()) + ".",
    ]
    for table in run["tables"]:
        lines += ["", f"**{table['title'].strip()}**", "", "| " + " | ".join(table["header"]) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table["header"]))) + "|")
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (compare ratios, not times)")
    parser.add_argument(
        "--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME", help=f"run only these: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write this run's results (default: benchmarks/results/<time>.json)",
    )
    parser.add_argument(
        "--compare", type=Path, default=None, help="a previous run's JSON: print the change of every number against it"
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="print a run's JSON as Markdown tables and exit (runs nothing)"
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        try:
            print(markdown(json.loads(args.markdown.read_text())), end="")
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"--markdown {args.markdown}: not a benchmark run's JSON ({exc})")
        return
    previous = None
    if args.compare is not None:
        try:
            previous = json.loads(args.compare.read_text())
        except (OSError, ValueError) as exc:
            sys.exit(f"--compare {args.compare}: not a benchmark run's JSON ({exc})")
    extra = ["--quick"] if args.quick else []
    started = datetime.now(UTC)
    load_start = load_average()
    out = args.json or Path(__file__).parent / "results" / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    names = args.only or list(BENCHMARKS)
    for done, name in enumerate(names, 1):
        run, options = BENCHMARKS[name]
        try:
            run([*extra, *options])
        except Exception as exc:  # noqa: BLE001 - one benchmark's failure is reported; the others still run
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"[:2000]
            print(f"benchmark {name} FAILED: {failed[name]}", flush=True)
        result = {
            "started": started.isoformat(timespec="seconds"),
            "ended": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "benchmarks": names[:done],
            "failed": failed,
            "machine": machine(),
            "load_average": {"start": load_start, "end": load_average()},
            "tables": RECORDED,
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out)  # after every benchmark, whole: a run cut short keeps what it measured
    print(f"results written to {out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if previous is not None:
        rows = changes(previous, result)
        print_table(
            f"change against {args.compare.name} (started {previous.get('started', '?')}); '!' marks more than "
            f"{CHANGE_MARK:.0%}",
            ["table | row", "column", "before", "now", "change"],
            rows,
        )
        if not rows:
            print("no number in this run matches one of that run (different benchmarks or sizes?)")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
