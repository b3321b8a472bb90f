"""`medops project`: check the project file before anything runs from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from medops.cli.common import console, ok
from medops.errors import InvalidInput

if TYPE_CHECKING:
    from medops.pipelines.project import LoadedProject

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


@app.command(
    "check",
    epilog="Examples:  medops project check   ·   medops project check -p ./readmission/medops.yaml",
)
def check(
    path: Path | None = typer.Argument(None, help="Project file (default: medops.yaml here or above)."),
    project: Path | None = typer.Option(None, "--project", "-p", help="Project file, as for the other commands."),
) -> None:
    """Validate the project file and its contracts; errors name the line and the field.

    Also checks that every source file exists; it reads no data. Inside a workspace it says
    whether this file's validation policy is the one that gates production there.
    """
    from medops.pipelines.project import find_project, load_project

    if path is not None and project is not None:
        raise InvalidInput("give the project file once: as an argument or with --project")
    chosen = path or project
    loaded = load_project(chosen.expanduser() if chosen else find_project())
    spec = loaded.spec
    console.print(f"[bold]{escape(spec.name)}[/]  {escape(str(loaded.path))}  sha256:{loaded.sha256[:12]}")
    console.print(f"  intended use: {escape(spec.intended_use)}")
    console.print(f"  population:   {escape(spec.population)}")
    missing = []
    for name, source in spec.sources.items():
        contract = f"contract v{loaded.contracts[name].version}" if name in loaded.contracts else "no contract"
        where = source.path or "(sql query)"
        if source.path and not loaded.resolve(source.path).is_file():
            missing.append(f"sources.{name}: {loaded.resolve(source.path)} does not exist")
        columns = len(spec.deidentify.tables[name].columns)
        console.print(
            f"  source {escape(name):<20} {source.format:<8} {escape(where)}  ({contract}, {columns} de-id rules)"
        )
    if missing:
        for line in missing:
            console.print(f"[yellow]warning:[/] {escape(line)}")
    _governs(loaded)
    ok("project file is valid")


def _governs(loaded: LoadedProject) -> None:
    """Whether this file's policy gates production in the workspace around it (if not, its evaluations explore)."""
    from medops.config import load_settings
    from medops.errors import WorkspaceNotFound
    from medops.evaluation.governing import project_path

    try:
        settings = load_settings()
    except WorkspaceNotFound:
        return
    governing = project_path(settings)
    if governing.resolve() == loaded.path:
        console.print(f"  governs production in the workspace at {escape(str(settings.home))}")
    else:
        console.print(
            f"  [yellow]not the workspace's project file[/] ({escape(str(governing))}): "
            "evaluations made with it are exploratory and can't gate production"
        )
