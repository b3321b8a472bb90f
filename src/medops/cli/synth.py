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
    "medops synth ./drifted --scenario unit_change --format parquet   ·   medops synth ./fhir --format fhir"
)


def synth(
    out: Path = typer.Argument(..., help="New folder for the generated files."),
    patients: int = typer.Option(1000, "--patients", "-n", min=1, help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    scenario: str = typer.Option("baseline", "--scenario", help=f"One of: {', '.join(SCENARIOS)}."),
    fmt: str = typer.Option("csv", "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    start: str = typer.Option("2025-01-01", "--start", metavar="DATE", help="First day of the period (YYYY-MM-DD)."),
    days: int = typer.Option(365, "--days", help="Length of the period in days; drift starts at its midpoint."),
    as_json: bool = JsonOption,
) -> None:
    """Generate patients, encounters, vitals and labs, medication fills, HCPs, notes and outcomes.

    The data contains synthetic PHI on purpose (names, MRN, SSN, addresses, phones, notes):
    it is the input de-identification must handle. Nothing here describes a real person.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", hint=f"formats: {', '.join(FORMATS)}")
    try:
        first_day = date.fromisoformat(start)
    except ValueError as exc:
        raise InvalidInput(f"--start {start!r} is not a date", hint="use YYYY-MM-DD") from exc
    with err_console.status(f"generating {plural(patients, 'patient')} ({scenario})…"):
        from medops.synth import generate, write  # NumPy and pandas: loaded when generating

        data = generate(patients, seed=seed, scenario=scenario, start=first_day, days=days)
    with err_console.status(f"writing {fmt}…"):
        files = write(data, out, fmt)
    if as_json:
        rows = {name: len(frame) for name, frame in data.tables().items()}
        print_json({"out": str(out), "files": [str(f) for f in files], "rows": rows})
        return
    table(None, ["table", "rows"], [(name, f"{len(frame):,}") for name, frame in data.tables().items()])
    ok(f"{plural(len(files), 'file')} in {out}")
