"""`medops db`: the metadata schema's version and upgrades."""

from __future__ import annotations

import typer

from medops.cli.common import console, ok
from medops.config import load_settings
from medops.store import Database, migrate

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def _db() -> Database:
    settings = load_settings()
    return Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)


@app.command("upgrade", epilog="Example:  medops db upgrade")
def upgrade() -> None:
    """Apply pending migrations; refuses a database written by a newer medops."""
    db = _db()
    try:
        before, after = migrate.upgrade(db)
    finally:
        db.dispose()
    if before == after:
        ok(f"schema already at {after}")
    else:
        ok(f"schema upgraded from {before or 'empty'} to {after}")


@app.command("status", epilog="Example:  medops db status")
def status() -> None:
    """Show the schema revision of the database and the one this medops needs."""
    db = _db()
    try:
        state = migrate.status(db)
    finally:
        db.dispose()
    console.print(f"database {db.display_url}")
    console.print(f"current  {state.current or 'none'}")
    console.print(f"head     {state.head}")
    if not state.known:
        console.print("[red]the database is newer than this medops: upgrade medops[/]")
        raise typer.Exit(1)
    if not state.up_to_date:
        console.print("[yellow]run `medops db upgrade`[/]")
        raise typer.Exit(1)
