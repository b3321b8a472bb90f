"""`medops demo`: the whole platform, end to end, on bundled data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from medops.cli.common import JsonOption, console, err_console, ok, plural, print_json, progress_bar, table
from medops.filesystems import for_root, known_schemes

EPILOG = (
    "Examples:  medops demo   ·   medops demo --dir ./demo-run   ·   medops demo --artifact-root memory://demo   ·   "
    "medops demo --json > demo.json"
)


def demo(
    directory: Path | None = typer.Option(None, "--dir", help="Folder for the demo (default: a new temp folder)."),
    patients: int = typer.Option(
        3200,  # medops.demo.DEMO_PATIENTS, not imported here: it loads the data stack
        "--patients",
        min=100,
        help="Patients in the generated hospital; its first extract holds those with a stay by then.",
    ),
    artifact_root: str | None = typer.Option(
        None, "--artifact-root", help=f"Artifact folder or URL ({known_schemes()}; default: in the workspace)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run the lifecycle demo: a workspace, a team, audited actions, signatures, then synthetic
    clinical data ingested through contracts and de-identification into versioned datasets."""
    memory = artifact_root is not None and not for_root(artifact_root).persistent  # an unknown scheme stops here
    if directory is not None and directory.exists() and any(directory.iterdir()):
        err_console.print(f"[red]error:[/] {escape(str(directory))} is not empty")
        raise typer.Exit(2)

    def say(step: str, outcome: str) -> None:
        if not as_json:
            console.print(f"[cyan]{step:>18}[/]  {escape(outcome)}")

    from medops.audit import AuditFilter, list_events
    from medops.demo import DEMO_PASSWORD, run_demo  # the whole lifecycle: loaded when the demo runs
    from medops.workspace import Workspace

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress_bar(*columns, enabled=not as_json) as bar:
        task = bar.add_task("tuning", visible=False)

        def tuning(done: int, budget: int | None, best: float) -> None:
            bar.update(task, completed=done, total=budget, visible=True, description=f"tuning, best AUROC {best:.3f}")

        result = run_demo(directory, say=say, patients=patients, tuning=tuning, artifact_root=artifact_root)
    if not result.chain_ok or result.tamper_caught_at is None or not (result.state_ok and result.state_tamper_named):
        err_console.print("[red]demo failed: the audit chain did not behave as it must[/]")
        raise typer.Exit(1)
    with Workspace.open(result.home) as ws:
        events = list_events(ws.db, AuditFilter(), limit=None, newest_first=False)
        project = Path(ws.settings.project_file).parent
    if as_json:
        print_json(
            {
                "home": str(result.home),
                "events": result.events,
                "chain_ok": result.chain_ok,
                "tamper_caught_at": result.tamper_caught_at,
                "state_ok": result.state_ok,
                "state_tamper_named": result.state_tamper_named,
                "steps": [{"step": s, "outcome": o} for s, o in result.steps],
                "reports": [str(p) for p in result.reports],
            }
        )
        return
    table(
        "the audit trail of the demo",
        ["seq", "actor", "action", "entity", "reason"],
        [(e.seq, e.actor, e.action, f"{e.entity_type}:{e.entity_id[:40]}", e.reason or "") for e in events],
    )
    ok(f"demo complete: {plural(result.events, 'audited event')}, chain intact, tampering caught")
    if memory:
        console.print(f"The artifacts in {escape(str(artifact_root))} end with this process; the records stay.")
    console.print("Reports (open the .html files in a browser):")
    for path in result.reports:
        console.print(f"  {escape(str(path))}")
    console.print(f"Explore it:  cd {escape(str(project))}; export MEDOPS_HOME={escape(str(result.home))}")
    console.print(f"             medops login ada   (the demo team's password: {escape(DEMO_PASSWORD)})")
    console.print("             medops data list · medops data show observations · medops lineage show notes")
    console.print(
        "             medops features list · medops features show labs · medops data show readmission_training"
    )
