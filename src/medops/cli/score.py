"""`medops score`: a file or a dataset through a registered model, into a prediction file."""

from __future__ import annotations

from pathlib import Path

import typer

from medops.backends import EXECUTORS
from medops.cli.common import JsonOption, ReasonOption, cli_caller, done, open_workspace, path_arg, plural, progress_bar

EPILOG = (
    "Examples:  medops score readmission --input admissions@3fa2c1 --output preds.parquet   ·   "
    "medops score readmission:2 --input new_patients.csv --output preds.csv   ·   "
    "medops score readmission --input admissions --output preds.parquet --executor dask://scheduler:8786"
)


def score(
    model: str = typer.Argument(..., metavar="MODEL", help="NAME:VERSION, or NAME alone for its production version."),
    input_: str = typer.Option(
        ..., "--input", "-i", metavar="FILE|DATASET", help="A Parquet or CSV file, or a dataset: NAME or NAME@VERSION."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", callback=path_arg, help="The prediction file to write: .parquet or .csv."
    ),
    keep: list[str] = typer.Option(
        [],
        "--keep",
        metavar="COLUMN",
        help="A dataset column to copy into the output (datasets only: they are de-identified). Repeatable.",
    ),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", metavar="N", help="Rows scored at a time (memory bound)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help=f"{EXECUTORS.choices()}: where rows are scored (default: the workspace's executor setting).",
    ),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Score every row of a file or dataset with a registered, verified model.

    Rows are read and scored in chunks, so memory stays bounded whatever the input's size.
    Each prediction holds its input row number, the probability, the decision at the
    validated threshold, the model, version and bundle SHA-256. A file's own columns are
    never copied (they may hold identifiers): join back by the row number. The prediction
    set is recorded in lineage (input and model version to prediction set) and the audit trail.
    On a Dask executor, partitions of the input are scored by the workers; the output is the same file.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from medops.services import Services

    with open_workspace() as ws:
        serving, caller = Services(ws).serving, cli_caller(ws, writes=True)
        source = serving.score_input(input_)
        with progress_bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            enabled=not as_json,
        ) as bar:
            task = bar.add_task(f"score {model}", total=source.rows)
            result = serving.score(
                caller,
                model,
                source,
                output,
                keep=keep,
                chunk_rows=chunk_rows,
                overwrite=overwrite,
                reason=reason,
                on_chunk=lambda rows: bar.advance(task, rows),
                executor=executor,
            )
    done(
        as_json,
        f"{plural(result.rows, 'row')} scored by {result.model}:{result.version} into {result.output} "
        f"({plural(result.positives, 'positive decision')}"
        + (f", {plural(result.flagged, 'row')} flagged out of range" if result.flagged else "")
        + ")",
        result.to_json(),
    )
