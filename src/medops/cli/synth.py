"""`medops synth`: generate realistic synthetic clinical data with drift scenarios."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from medops.cli.common import JsonOption, err_console, ok, plural, print_json, table
from medops.errors import InvalidInput
from medops.synth.names import FORMATS, SCENARIOS

EPILOG = (
    "Examples:  medops synth ./data --patients 10000 --seed 7   ·   "
    "medops synth ./drifted --scenario unit_change --format parquet   ·   medops synth ./fhir --format fhir   ·   "
    "medops synth ./jan --days 608 --on-record 2026-01-01 --seed 7   (the same world later: --on-record 2026-09-01)"
)


def synth(
    out: Path = typer.Argument(..., help="New folder for the generated files."),
    patients: int = typer.Option(1000, "--patients", "-n", min=1, help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    scenario: str = typer.Option("baseline", "--scenario", help=f"One of: {', '.join(SCENARIOS)}."),
    fmt: str = typer.Option("csv", "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    start: str = typer.Option("2025-01-01", "--start", metavar="DATE", help="First day of the period (YYYY-MM-DD)."),
    days: int = typer.Option(365, "--days", help="Length of the period in days; drift starts at its midpoint."),
    drift_at: str | None = typer.Option(
        None, "--drift-at", metavar="DATE", help="The day the scenario's change begins (default: the midpoint)."
    ),
    on_record: str | None = typer.Option(
        None, "--on-record", metavar="DATE", help="Write an EHR extract taken that day: what was on record by then."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Generate patients, encounters, vitals and labs, medication fills, HCPs, notes and outcomes.

    The data contains synthetic PHI on purpose (names, MRN, SSN, addresses, phones, notes):
    it is the input de-identification must handle. Nothing here describes a real person.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", hint=f"formats: {', '.join(FORMATS)}")
    first_day = _day("--start", start)
    drift_day = _day("--drift-at", drift_at) if drift_at else None
    taken = _day("--on-record", on_record) if on_record else None
    if taken is not None and taken <= first_day:
        raise InvalidInput(f"--on-record {taken} is not after --start {first_day}: the extract would hold nothing")
    with err_console.status(f"generating {plural(patients, 'patient')} ({scenario})…"):
        from medops.synth import generate, write  # NumPy and pandas: loaded when generating
        from medops.synth.extracts import on_record as extract

        data = generate(patients, seed=seed, scenario=scenario, start=first_day, days=days, drift_at=drift_day)
        if taken is not None:
            data = extract(data, taken)
    with err_console.status(f"writing {fmt}…"):
        files = write(data, out, fmt)
    if as_json:
        rows = {name: len(frame) for name, frame in data.tables().items()}
        print_json({"out": str(out), "files": [str(f) for f in files], "rows": rows})
        return
    table(None, ["table", "rows"], [(name, f"{len(frame):,}") for name, frame in data.tables().items()])
    ok(f"{plural(len(files), 'file')} in {out}")


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{option} {text!r} is not a date", hint="use YYYY-MM-DD") from exc
