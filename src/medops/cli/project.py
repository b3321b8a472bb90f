"""`medops project`: check the project file before anything runs from it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from medops.cli.common import console, ok

app = typer.Typer(help="The project file (medops.yaml): one reviewed declaration of a use case.")


@app.command("check", epilog="Examples:  medops project check   ·   medops project check ./readmission/medops.yaml")
def check(path: Path | None = typer.Argument(None, help="Project file (default: medops.yaml here or above).")) -> None:
    """Validate the project file and its contracts; errors name the line and the field.

    Also checks that every source file exists; it reads no data.
    """
    from medops.pipelines.project import find_project, load_project

    loaded = load_project(path.expanduser() if path else find_project())
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
    ok("project file is valid")
