"""The `medops` command: groups are registered here; errors become one line and an exit code."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer
from rich.markup import escape

from medops.cli import (
    audit,
    data,
    db,
    demo,
    evaluate,
    features,
    lineage,
    models,
    project,
    runs,
    synth,
    token,
    train,
    user,
    workspace,
)
from medops.cli.common import err_console
from medops.cli.hints import hint_for
from medops.errors import MedopsError
from medops.version import __version__

app = typer.Typer(
    name="medops",
    help="medops: governed MLOps for healthcare and life sciences.\n\n"
    "Start with `medops init DIR`, then `medops doctor`. Every state change is audited; "
    "`medops audit verify` proves the trail intact.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    epilog="Examples:  medops init ./ws   ·   medops demo   ·   MEDOPS_USER=alice medops audit log --actor alice",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
    home: Path | None = typer.Option(None, "--home", help="Workspace folder (default: MEDOPS_HOME or search upward)."),
) -> None:
    if home is not None:
        os.environ["MEDOPS_HOME"] = str(home.expanduser().resolve())


workspace.register(app)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.add_typer(user.app, name="user")
app.add_typer(token.app, name="token")
app.add_typer(project.app, name="project")
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(lineage.app, name="lineage")
app.add_typer(runs.app, name="runs")
app.add_typer(evaluate.app, name="evaluations")
app.add_typer(models.app, name="models")
app.command("demo", epilog=demo.EPILOG)(demo.demo)
app.command("synth", epilog=synth.EPILOG)(synth.synth)
app.command("train", epilog=train.EPILOG)(train.train)
app.command("evaluate", epilog=evaluate.EPILOG)(evaluate.evaluate)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a MedopsError prints cause and hint, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MEDOPS_DEBUG") == "1"
    try:
        app(args=args, prog_name="medops")
    except MedopsError as exc:
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/] {escape(exc.message)}")
        hint = hint_for(exc)
        if hint:
            err_console.print(f"[dim]hint:[/] {escape(hint)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the details for --debug
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
        err_console.print("[dim]hint:[/] run again with --debug for the traceback, and report it")
        sys.exit(70)


if __name__ == "__main__":
    main()
