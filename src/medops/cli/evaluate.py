"""`medops evaluate`: validate a trained run against the project's policy; `medops evaluations list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    cli_caller,
    console,
    done,
    open_workspace,
    plural,
    print_json,
    progress_bar,
    table,
    when,
)
from medops.cli.data import ProjectOption, project_at
from medops.csv_cells import neutralize
from medops.errors import InvalidInput

if TYPE_CHECKING:
    pass

EPILOG = (
    "Examples:  medops evaluate   ·   medops evaluate RUN --champion PRODUCTION_RUN --out reports/   ·   "
    "medops evaluations list   ·   medops evaluations export EVAL --predictions preds.csv"
)
app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def evaluate(
    run: str | None = typer.Argument(None, help="The run to validate (default: the newest trained run)."),
    champion: str | None = typer.Option(
        None,
        "--champion",
        metavar="RUN",
        help="The model it would replace, for non-inferiority on the same test rows (default: the production "
        "version of the registered model named after the project).",
    ),
    out: Path | None = typer.Option(
        Path("reports"), "--out", "-o", help="Folder for the validation report and the model card."
    ),
    project: Path | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Validate a run: metrics with bootstrap intervals, subgroups and gaps, robustness, the policy's gates.

    The result (every gate with its value, threshold and why) is stored and audited; the
    validation report and the model card are written to --out and kept in the artifact
    store. Exits 1 when a gate fails.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from medops.services.projects.evaluate import evaluate_from_project

    loaded = project_at(project)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        open_workspace() as ws,
        progress_bar(*columns, enabled=not as_json) as bar,
    ):
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = evaluate_from_project(
            ws,
            loaded,
            run,
            champion=champion,
            out=out.expanduser() if out else None,
            progress=progress,
            caller=cli_caller(ws, writes=True),
        )
    doc = result.doc
    if as_json:
        print_json(
            {
                "evaluation": result.info.id,
                "picked": result.picked,
                "run": doc["run"]["id"],
                "passed": doc["passed"],
                "governing": result.info.governing,
                "threshold": doc["threshold"]["value"],
                "test_rows_refused": doc["serving"]["test_rows_refused"],
                "metrics": doc["metrics"],
                "gates": doc["gates"],
                "files": [str(f) for f in result.files],
            }
        )
    else:
        m = doc["metrics"]
        if result.picked:
            console.print(f"evaluating {escape(result.picked)}")
        console.print(
            f"run {doc['run']['id'][:12]} at threshold {doc['threshold']['value']:.3f} "
            f"({escape(doc['threshold']['rule'])}): AUROC {_ci(m['auroc'])}, sensitivity {_ci(m['sensitivity'])}, "
            f"specificity {_ci(m['specificity'])}"
        )
        _gates(doc["gates"])
        refused = doc["serving"]["test_rows_refused"]
        if refused:
            console.print(
                f"[yellow]serving[/]: the registered model would {doc['serving']['out_of_range']} {refused:,} of these "
                f"test rows as out of range ({', '.join(doc['serving']['refused_by_feature'])})"
            )
        for path in result.files:
            console.print(f"  wrote {escape(str(path))}")
        verdict = "[green]PASSED[/]" if doc["passed"] else "[red]FAILED[/]"
        console.print(f"evaluation {result.info.short}: {verdict}")
        if not result.info.governing:
            console.print(
                "[yellow]exploratory[/]: this project file's policy is not the workspace's governing policy, "
                "so this evaluation can't gate production"
            )
    if not doc["passed"]:
        raise typer.Exit(1)


def _ci(entry: dict[str, float]) -> str:
    return f"{entry['value']:.3f} ({entry['low']:.3f}–{entry['high']:.3f})"


def _gates(gates: list[dict[str, Any]]) -> None:
    rows = [[g["criterion"], "pass" if g["passed"] else "FAIL", g["why"]] for g in gates]
    table(None, ["gate", "result", "why"], rows)


@app.command("list", epilog="Examples:  medops evaluations list   ·   medops evaluations list --run RUN")
def list_cmd(
    run: str | None = typer.Option(None, "--run", help="Only evaluations of this run."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = JsonOption,
) -> None:
    """Evaluations, newest first."""
    found = remote.read_list(
        "/v1/evaluations",
        lambda services, caller: [e.to_json() for e in services.evaluation.list(caller, run=run, limit=limit)],
        limit=limit,
        params={"run": run} if run else None,
    )
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["evaluation", "run", "result", "policy", "champion", "when", "by"],
        [
            [
                e["id"][:12],
                e["run"][:12],
                "pass" if e["passed"] else "FAIL",
                f"{e['policy_sha256'][:12]}{'' if e['governing'] else ' (exploratory)'}",
                (e["champion"] or "")[:12],
                when(e["created_at"]),
                e["created_by"],
            ]
            for e in found
        ],
    )


@app.command(
    "show", epilog="Examples:  medops evaluations show 3f2a9c   ·   medops evaluations show 3f2a9c --report r.html"
)
def show_cmd(
    ref: str = typer.Argument(..., help="Evaluation id (or its first 6+ characters)."),
    report: Path | None = typer.Option(None, "--report", help="Write its validation report (HTML) here."),
    as_json: bool = JsonOption,
) -> None:
    """One evaluation's gates; optionally its report, read back verified from the artifact store."""
    from medops.atomic import write_atomic_bytes

    path = f"/v1/evaluations/{remote.segment(ref)}"
    info = remote.read(path, lambda services, caller: services.evaluation.show(caller, ref).to_json())
    if report is not None:
        _, html = remote.download(
            f"{path}/report", lambda services, caller: services.evaluation.document(caller, ref, "report")
        )
        write_atomic_bytes(report.expanduser(), html)
    if as_json:
        print_json(info)
        return
    console.print(f"evaluation {info['id']} of run {info['run'][:12]}: {'PASSED' if info['passed'] else 'FAILED'}")
    if not info["governing"]:
        console.print(
            f"exploratory: policy {info['policy_sha256'][:12]} is not the workspace's; it can't gate production"
        )
    _gates(info["gates"])


@app.command(
    "export",
    epilog="Examples:  medops evaluations export 3f2a9c --predictions preds.csv   ·   ... --predictions preds.parquet",
)
def export_cmd(
    ref: str = typer.Argument(..., help="Evaluation id (or its first 6+ characters)."),
    predictions: Path = typer.Option(
        ..., "--predictions", help="Write every test row's outcome, score and decision here (.csv or .parquet)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write an evaluation's per-row test predictions (pseudonymized ids only), to recompute its numbers.

    Each row: its position, the patient's pseudonym (grouped splits), the outcome, the score, the
    decision at the evaluation's threshold, and each subgroup attribute. Audited.
    """
    from medops.atomic import write_atomic_bytes
    from medops.services import Services

    path = predictions.expanduser()
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInput(f"{path}: write predictions to a .csv or a .parquet file")
    with open_workspace() as ws:
        table = Services(ws).evaluation.predictions(cli_caller(ws, writes=True), ref)
    write_atomic_bytes(path, _encode(table, path.suffix.lower()))
    doc = {"predictions": table.num_rows, "path": str(path)}
    done(as_json, f"{plural(table.num_rows, 'prediction')} written to {path}", doc)


def _encode(table: Any, suffix: str) -> bytes:
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    if suffix == ".csv":
        pacsv.write_csv(_spreadsheet_safe(table), sink)
    else:
        pq.write_table(table, sink)
    return sink.getvalue()


def _spreadsheet_safe(table: Any) -> Any:
    """Subgroup values come from the data: no text cell (or column name) may run as a spreadsheet formula."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            values = [None if v is None else neutralize(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field, pa.array(values, field.type))
    return table.rename_columns([neutralize(name) for name in table.column_names])
