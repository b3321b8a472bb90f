"""`medops demo`: the whole platform, end to end, on bundled data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from medops.audit import AuditFilter, list_events
from medops.cli.common import console, err_console, ok, table
from medops.filesystems import for_root, known_schemes
from medops.workspace import Workspace

EPILOG = "Examples:  medops demo   ·   medops demo --dir ./demo-run   ·   medops demo --artifact-root memory://demo"


def demo(
    directory: Path | None = typer.Option(None, "--dir", help="Folder for the demo (default: a new temp folder)."),
    patients: int = typer.Option(2000, "--patients", min=100, help="Synthetic patients to generate and ingest."),
    artifact_root: str | None = typer.Option(
        None, "--artifact-root", help=f"Artifact folder or URL ({known_schemes()}; default: in the workspace)."
    ),
) -> None:
    """Run the lifecycle demo: a workspace, a team, audited actions, signatures, then synthetic
    clinical data ingested through contracts and de-identification into versioned datasets."""
    if directory is not None and directory.exists() and any(directory.iterdir()):
        err_console.print(f"[red]error:[/] {escape(str(directory))} is not empty")
        raise typer.Exit(2)

    def say(step: str, outcome: str) -> None:
        console.print(f"[cyan]{step:>18}[/]  {escape(outcome)}")

    from medops.demo import run_demo  # the whole lifecycle: loaded when the demo runs

    result = run_demo(directory, say=say, patients=patients, artifact_root=artifact_root)
    if not result.chain_ok or result.tamper_caught_at is None:
        err_console.print("[red]demo failed: the audit chain did not behave as it must[/]")
        raise typer.Exit(1)
    with Workspace.open(result.home) as ws:
        events = list_events(ws.db, AuditFilter(), limit=None, newest_first=False)
    table(
        "the audit trail of the demo",
        ["seq", "actor", "action", "entity", "reason"],
        [(e.seq, e.actor, e.action, f"{e.entity_type}:{e.entity_id[:40]}", e.reason or "") for e in events],
    )
    ok(f"demo complete: {result.events} audited events, chain intact, tampering caught")
    if artifact_root is not None and not for_root(artifact_root).persistent:
        console.print(f"The artifacts in {escape(artifact_root)} end with this process; the records stay.")
    project = result.home.parent / "project"  # medops.yaml: the commands that read the project file run here
    console.print(
        f"Explore it:  export MEDOPS_HOME={escape(str(result.home))} MEDOPS_USER=ada; cd {escape(str(project))}"
    )
    console.print("             medops data list · medops data show observations · medops lineage show notes")
    console.print(
        "             medops features list · medops features show labs · medops data show readmission_training"
    )
