"""`medops token`: API tokens for the REST API, shown once and stored hashed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, ReasonOption, cli_caller, console, done, ok, open_workspace, print_json, table
from medops.services import Services

if TYPE_CHECKING:
    pass

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


@app.command(
    "create",
    epilog=(
        "Examples:  medops token create --name ehr-integration --expires-in-days 90   ·   "
        "medops token create --name batch --user svc-batch"
    ),
)
def create(
    name: str = typer.Option(..., "--name", help="What the token is for."),
    user: str | None = typer.Option(None, "--user", help="Owner (default: you; others need admin)."),
    expires_in_days: float | None = typer.Option(None, "--expires-in-days", help="Expire after this many days."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a token; its secret is printed once and never stored."""
    with open_workspace() as ws:
        view, secret = Services(ws).identity.create_token(
            cli_caller(ws, writes=True), name, username=user, expires_in_days=expires_in_days, reason=reason
        )
    if as_json:
        print_json({**view.to_json(), "secret": secret})
        return
    ok(
        f"token {view.id} created for {view.username}"
        + (f", expires {view.expires_at:%Y-%m-%d %H:%M} UTC" if view.expires_at else "")
    )
    console.print(f"[bold]{escape(secret)}[/]")
    console.print("[dim]This is the only time the token is shown. Store it in a secret manager.[/]")


@app.command("list", epilog="Examples:  medops token list --user alice   ·   medops token list --sessions")
def list_tokens(
    user: str | None = typer.Option(None, "--user", help="Only this user's (admins)."),
    sessions: bool = typer.Option(False, "--sessions", help="Also list login sessions (medops login)."),
    as_json: bool = JsonOption,
) -> None:
    """List tokens (never their secrets): yours, or everyone's for an admin; revoke one by its id."""
    with open_workspace() as ws:
        tokens = Services(ws).identity.tokens(cli_caller(ws, writes=False), username=user, sessions=sessions)
    if as_json:
        print_json([t.to_json() for t in tokens])
        return
    table(
        None,
        ["id", "user", "kind", "name", "state", "created (UTC)", "expires (UTC)"],
        [
            (
                t.id,
                t.username,
                t.kind,
                t.name,
                t.state,
                f"{t.created_at:%Y-%m-%d %H:%M}",
                f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
            )
            for t in tokens
        ],
    )


@app.command("revoke", epilog="Example:  medops token revoke 3f9a2c1b7d0e --reason 'laptop lost'")
def revoke(
    token_id: str = typer.Argument(..., help="Token id from `medops token list`."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token at once; requests with it fail from now on."""
    with open_workspace() as ws:
        Services(ws).identity.revoke_token(cli_caller(ws, writes=True), token_id, reason=reason)
    done(as_json, f"token {token_id} revoked", {"id": token_id, "state": "revoked"})
