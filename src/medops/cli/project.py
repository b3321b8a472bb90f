"""`medops project`: check a project file before anything runs from it, show the workspace's, add one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import JsonOption, console, done, ok, plural, print_json
from medops.errors import InvalidInput
from medops.services.projects.templates import templates

if TYPE_CHECKING:
    from medops.services.projects.project import LoadedProject

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


@app.command(
    "check",
    epilog="Examples:  medops project check   ·   medops project check -p ./readmission/medops.yaml",
)
def check(
    path: Path | None = typer.Argument(None, help="Project file (default: medops.yaml here or above)."),
    project: Path | None = typer.Option(None, "--project", "-p", help="Project file, as for the other commands."),
    as_json: bool = JsonOption,
) -> None:
    """Validate the project file and its contracts; errors name the line and the field.

    Also checks that every source file exists; it reads no data. Inside a workspace it says
    whether this file's validation policy is the one that gates production there.
    """
    from medops.services.projects.project import find_project, load_project, summary

    if path is not None and project is not None:
        raise InvalidInput("give the project file once: as an argument or with --project")
    chosen = path or project
    loaded = load_project(chosen.expanduser() if chosen else find_project())
    doc = summary(loaded)
    home, governing = _governing(loaded)
    governs = None if governing is None else governing == loaded.path
    if as_json:
        print_json(
            {
                "valid": True,
                **doc,
                "workspace": str(home) if home else None,
                "governing_project_file": str(governing) if governing else None,
                "governs_production": governs,
            }
        )
        return
    _print_summary(doc)
    for s in doc["sources"]:
        if s["exists"] is False:
            console.print(
                f"[yellow]warning:[/] sources.{escape(s['name'])}: {loaded.resolve(s['path'])} does not exist"
            )
    if governs:
        console.print(f"  governs production in the workspace at {escape(str(home))}")
    elif governing is not None:
        console.print(
            f"  [yellow]not the workspace's project file[/] ({escape(str(governing))}): "
            "evaluations made with it are exploratory and can't gate production"
        )
    ok("project file is valid")


@app.command("show", epilog="Examples:  medops project show   ·   medops project show --json")
def show(as_json: bool = JsonOption) -> None:
    """The workspace's reviewed project file: the one whose validation policy gates production."""
    doc = remote.read("/v1/project", lambda services, caller: services.data.project(caller))
    if as_json:
        print_json(doc)
        return
    _print_summary(doc)
    console.print("  governs production in this workspace")


def _print_summary(doc: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(doc['name'])}[/]  {escape(doc['path'])}  sha256:{doc['sha256'][:12]}")
    console.print(f"  intended use: {escape(doc['intended_use'])}")
    console.print(f"  population:   {escape(doc['population'])}")
    for s in doc["sources"]:
        contract = f"contract v{s['contract_version']}" if s["contract_version"] is not None else "no contract"
        console.print(
            f"  source {escape(s['name']):<20} {s['format']:<8} {escape(s['path'] or '(sql query)')}  "
            f"({contract}, {plural(s['deid_rules'], 'de-id rule')})"
        )


def _governing(loaded: LoadedProject) -> tuple[Path | None, Path | None]:
    """The workspace around us and its project file: the one whose policy gates production (others explore)."""
    from medops.config import load_settings
    from medops.errors import WorkspaceNotFound
    from medops.evaluation.governing import project_path

    try:
        settings = load_settings()
    except WorkspaceNotFound:
        return None, None
    return settings.home, project_path(settings).resolve()


@app.command(
    "new",
    epilog="Examples:  medops project new --template readmission   ·   "
    "medops project new studies/readmission --template readmission --patients 500",
)
def new(
    directory: Path | None = typer.Argument(None, help="Folder for the project (default: the workspace's own)."),
    template: str = typer.Option(..., "--template", help=f"Which template: {', '.join(templates())}."),
    patients: int = typer.Option(2000, "--patients", min=1, help="Synthetic patients in its raw data."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic data."),
    as_json: bool = JsonOption,
) -> None:
    """Add a project from a template to the current workspace: medops.yaml, contracts, synthetic raw data.

    It never overwrites a project file. In the workspace's own folder it becomes the project
    that gates production; elsewhere its evaluations are exploratory.
    """
    from medops.cli.workspace import scaffold_template
    from medops.config import find_home

    home = find_home()
    target = (directory.expanduser() if directory is not None else home).resolve()
    files = scaffold_template(target, template, patients, seed)
    done(
        as_json,
        f"project {template} in {target}: {plural(len(files), 'file')} (medops.yaml, contracts/, raw/ synthetic data)",
        {"template": template, "directory": str(target), "workspace": str(home), "files": [str(f) for f in files]},
    )
    if not as_json:
        console.print("Next: [bold]medops project check[/], then [bold]medops data ingest --all[/].")
