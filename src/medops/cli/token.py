"""`medops token`: API tokens for the REST API, shown once and stored hashed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import JsonOption, ReasonOption, console, done, ok, print_json, table, when

if TYPE_CHECKING:
    from medops.caller import Caller
    from medops.services import Services

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

    def here(services: Services, caller: Caller) -> dict[str, Any]:
        view, secret = services.identity.create_token(
            caller, name, username=user, expires_in_days=expires_in_days, reason=reason
        )
        return {**view.to_json(), "secret": secret}

    token = remote.change(
        "POST",
        "/v1/tokens",
        here,
        body={"name": name, "username": user, "expires_in_days": expires_in_days, "reason": reason},
    )
    if as_json:
        print_json(token)
        return
    ok(
        f"token {token['id']} created for {token['user']}"
        + (f", expires {when(token['expires_at'], seconds=False)} UTC" if token["expires_at"] else "")
    )
    console.print(f"[bold]{escape(token['secret'])}[/]")
    console.print("[dim]This is the only time the token is shown. Store it in a secret manager.[/]")


@app.command("list", epilog="Examples:  medops token list --user alice   ·   medops token list --sessions")
def list_tokens(
    user: str | None = typer.Option(None, "--user", help="Only this user's (admins)."),
    sessions: bool = typer.Option(False, "--sessions", help="Also list login sessions (medops login)."),
    as_json: bool = JsonOption,
) -> None:
    """List tokens (never their secrets): yours, or everyone's for an admin; revoke one by its id."""
    tokens = remote.read(
        "/v1/tokens",
        lambda services, caller: [
            t.to_json() for t in services.identity.tokens(caller, username=user, sessions=sessions)
        ],
        params={"username": user, "sessions": True if sessions else None},
    )
    if as_json:
        print_json(tokens)
        return
    table(
        None,
        ["id", "user", "kind", "name", "state", "created (UTC)", "expires (UTC)"],
        [
            (
                t["id"],
                t["user"],
                t["kind"],
                t["name"],
                t["state"],
                when(t["created_at"], seconds=False),
                when(t["expires_at"], seconds=False) if t["expires_at"] else "never",
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
    token = remote.change(
        "DELETE",
        f"/v1/tokens/{remote.segment(token_id)}",
        lambda services, caller: services.identity.revoke_token(caller, token_id, reason=reason).to_json(),
        params={"reason": reason},
    )
    done(as_json, f"token {token_id} revoked", token)
