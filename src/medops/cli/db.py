"""`medops db`: the metadata schema's version and upgrades."""

from __future__ import annotations

import typer

from medops.cli.common import JsonOption, console, done, print_json
from medops.config import load_settings
from medops.store import Database, migrate

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def _db() -> Database:
    settings = load_settings()
    return Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)


@app.command("upgrade", epilog="Example:  medops db upgrade")
def upgrade(as_json: bool = JsonOption) -> None:
    """Apply pending migrations; refuses a database written by a newer medops."""
    db = _db()
    try:
        before, after = migrate.upgrade(db)
    finally:
        db.dispose()
    message = (
        f"schema already at {after}" if before == after else f"schema upgraded from {before or 'empty'} to {after}"
    )
    done(as_json, message, {"before": before, "after": after, "upgraded": before != after})


@app.command("status", epilog="Example:  medops db status")
def status(as_json: bool = JsonOption) -> None:
    """Show the schema revision of the database and the one this medops needs."""
    db = _db()
    try:
        state = migrate.status(db)
    finally:
        db.dispose()
    if as_json:
        print_json(
            {
                "database": db.display_url,
                "current": state.current,
                "head": state.head,
                "known": state.known,
                "up_to_date": state.up_to_date,
            }
        )
        if not state.up_to_date:
            raise typer.Exit(1)
        return
    console.print(f"database {db.display_url}")
    console.print(f"current  {state.current or 'none'}")
    console.print(f"head     {state.head}")
    if not state.known:
        console.print("[red]the database is newer than this medops: upgrade medops[/]")
        raise typer.Exit(1)
    if not state.up_to_date:
        console.print("[yellow]run `medops db upgrade`[/]")
        raise typer.Exit(1)
