"""`medops retrain`: the workspace's reviewed project file's pipeline, run now to a challenger."""

from __future__ import annotations

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, ReasonOption, channels_of, cli_caller, console, open_workspace, print_json

EPILOG = "Examples:  medops retrain -r 'new quarter of discharges'   ·   medops retrain --json"


def retrain(reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Retrain from the workspace's own project file (the reviewed one, wherever you stand).

    Runs its whole pipeline with the trigger `retrain`: the sources are read again, and what
    they changed is trained, validated against production (non-inferiority as the policy says)
    and registered if it passes. Promotion still needs the signatures the policy names. Alerts
    of rules marked `retrain: true` start the same run by themselves.
    """
    from medops.evaluation.governing import project_path
    from medops.services import Services
    from medops.services.projects.project import load_project

    with open_workspace() as ws:
        loaded = load_project(project_path(ws.settings))
        services = Services(ws)
        record = services.pipelines.run(
            cli_caller(ws, writes=True),
            loaded,
            trigger="retrain",
            reason=reason or "retrain",
            channels=channels_of(services.pipelines.monitor_spec()),
            on=lambda event, step, note: (
                None
                if as_json
                else console.print(f"  {event:<7} {escape(getattr(step, 'name', '')):<28} {escape(note)}")
            ),
        )
    if as_json:
        print_json(record.to_json())
        if record.state == "stopped":
            raise typer.Exit(1)
        return
    ran = [s.step for s in record.steps if s.state == "done"]
    if record.state == "stopped":
        console.print(f"[yellow]stopped[/] run {record.short}: {escape(record.steps[-1].note)}")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] run {record.short}: {len(ran)} ran ({', '.join(ran) or 'nothing changed'})")
