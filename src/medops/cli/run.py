"""`medops run`: the project file's steps as a pipeline; unchanged steps are skipped and say why."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, ReasonOption, channels_of, cli_caller, console, open_workspace, print_json
from medops.cli.data import ProjectOption, project_at

EPILOG = (
    "Examples:  medops run   ·   medops run --dry-run   ·   medops run train   ·   "
    "medops run --from train   ·   medops run --force ingest.observations   ·   medops run ingest   ·   "
    "medops run --executor dask-local"
)

MARKS = {"run": "[cyan]run  [/]", "skip": "[dim]skip [/]", "after": "[cyan]maybe[/]", "held": "[dim]held [/]"}


def run(
    steps: list[str] = typer.Argument(
        None, metavar="STEP", help="Run these steps (names, or kinds such as 'ingest') and what they need."
    ),
    start: str | None = typer.Option(
        None, "--from", metavar="STEP", help="Run from this step on; the steps before it are not run."
    ),
    force: list[str] = typer.Option(
        [], "--force", metavar="STEP", help="Run this step even if nothing it reads changed (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (what would run, and why) and stop."),
    trigger: str = typer.Option(
        "manual",
        "--trigger",
        metavar="WHAT",
        help="What started this run, recorded with it (a CronJob: schedule:NAME).",
    ),
    executor: str | None = typer.Option(
        None,
        "--executor",
        metavar="EXECUTOR",
        help="local, dask-local or dask://host:8786: where ingest, training set, train and evaluate run "
        "(default: the workspace's executor setting).",
    ),
    project: Path | None = ProjectOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the project file's pipeline: ingest, features, training set, train, evaluate, register.

    The steps and their order come from the file. A step whose inputs (its section of the file,
    the data versions it reads, medops's code and the environment) are those of a finished step
    is skipped, and says which run made its outputs; a step that runs says what changed. A run
    that failed or was killed resumes from its first unfinished step. Each step checks your roles
    as its own command would. `medops pipelines list` shows the history. On a Dask executor the
    heavy steps run on a worker, which must see the workspace's folder (as for feature views).
    """
    from medops.services import Services

    loaded = project_at(project)
    with open_workspace() as ws:
        services = Services(ws)
        caller = cli_caller(ws, writes=not dry_run)
        if dry_run:
            plan = services.pipelines.plan(caller, loaded, steps or (), start=start, force=force)
            if as_json:
                print_json([{"step": d.step.name, "verdict": d.verdict, "note": d.note, "key": d.key} for d in plan])
                return
            console.print(f"[bold]{escape(loaded.spec.name)}[/]: the plan ({len(plan)} steps), nothing run")
            for d in plan:
                console.print(f"  {MARKS[d.verdict]} {escape(d.step.name):<28} {escape(d.note)}")
            return
        began: dict[str, float] = {}

        def on(event: str, step: object, note: str) -> None:
            name = getattr(step, "name", "")
            if as_json:
                return
            if event == "skip":
                console.print(f"  [dim]skip[/]  {escape(name):<28} [dim]{escape(note)}[/]")
            elif event == "start":
                began[name] = time.monotonic()
                console.print(f"  [cyan]run[/]   {escape(name):<28} {escape(note)}")
            elif event == "done":
                seconds = time.monotonic() - began.get(name, time.monotonic())
                console.print(f"  [green]✓[/]     {escape(name):<28} [dim]{seconds:.1f} s[/]")
            elif event == "stopped":
                console.print(f"  [yellow]stop[/]  {escape(name):<28} {escape(note)}")
            elif event == "failed":
                console.print(f"  [red]✗[/]     {escape(name):<28} {escape(note)}")

        def say(message: str) -> None:
            if not as_json:
                console.print(f"          [dim]{escape(message)}[/]")

        if not as_json:
            console.print(f"[bold]{escape(loaded.spec.name)}[/]: running the pipeline of {escape(str(loaded.path))}")
        record = services.pipelines.run(
            caller,
            loaded,
            steps or (),
            start=start,
            force=force,
            trigger=trigger,
            reason=reason,
            on=on,
            say=say,
            channels=channels_of(services.pipelines.monitor_spec()),
            executor_url=executor,
        )
    if as_json:
        print_json(record.to_json())
        if record.state == "stopped":
            raise typer.Exit(1)
        return
    ran = sum(s.state == "done" for s in record.steps)
    skipped = sum(s.state == "skipped" for s in record.steps)
    if record.state == "stopped":
        console.print(f"[yellow]stopped[/] run {record.short}: {ran} ran, {skipped} unchanged; see above why")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] run {record.short}: {ran} ran, {skipped} unchanged")
