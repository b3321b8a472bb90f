"""`medops user`: people, their roles and passwords. Only admins change users."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cli_caller,
    done,
    open_workspace,
    print_json,
    read_secret,
    table,
)
from medops.identity import parse_role, parse_roles
from medops.services import Services

if TYPE_CHECKING:
    pass

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

PasswordStdin = typer.Option(False, "--password-stdin", help="Read the password from stdin instead of a prompt.")


@app.command(
    "add", epilog="Example:  medops user add alice --name 'Alice Smith' --role data_scientist --password-stdin < pw"
)
def add(
    username: str = typer.Argument(..., help="Login name: lowercase letters, digits, . _ -"),
    name: str = typer.Option(..., "--name", help="Full name, printed on e-signatures."),
    role: list[str] | None = typer.Option(None, "--role", help="Role to grant; repeat or comma-separate."),
    password_stdin: bool = PasswordStdin,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Add a user with roles: data_scientist, ml_engineer, validator, clinical_reviewer, auditor, admin."""
    roles = parse_roles(role)
    password = read_secret(None, from_stdin=password_stdin, prompt=f"Password for {username}", confirm=True)
    with open_workspace() as ws:
        view = Services(ws).identity.add_user(cli_caller(ws), username, name, password, roles, reason=reason)
    done(as_json, f"user {view.username} added with roles: {', '.join(view.roles) or 'none'}", view.to_json())


@app.command("list", epilog="Example:  medops user list --json")
def list_users(as_json: bool = JsonOption) -> None:
    """List users, their roles and whether they are active."""
    with open_workspace() as ws:
        users = Services(ws).identity.users(cli_caller(ws))
    if as_json:
        print_json([u.to_json() for u in users])
        return
    table(
        None,
        ["user", "name", "roles", "active", "created (UTC)"],
        [
            (
                u.username,
                u.full_name,
                ", ".join(u.roles),
                "yes" if u.active else "no",
                u.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for u in users
        ],
    )


@app.command("disable", epilog="Example:  medops user disable bob --reason 'left the company'")
def disable(username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Disable a user: they can no longer act, sign or use tokens. Users are never deleted."""
    with open_workspace() as ws:
        Services(ws).identity.disable(cli_caller(ws), username, reason=reason)
    done(as_json, f"user {username} disabled", {"username": username, "active": False})


@app.command("enable", epilog="Example:  medops user enable bob --reason 'locked out after typos; identity checked'")
def enable(username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Enable a disabled or locked user again (admins); a locked user's count of failed logins starts again."""
    with open_workspace() as ws:
        Services(ws).identity.enable(cli_caller(ws), username, reason=reason)
    done(as_json, f"user {username} enabled", {"username": username, "active": True})


@app.command("grant", epilog="Example:  medops user grant carol validator --reason 'QA lead for study 12'")
def grant(
    username: str = typer.Argument(...),
    role: str = typer.Argument(...),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a user a role."""
    with open_workspace() as ws:
        view = Services(ws).identity.grant(cli_caller(ws), username, parse_role(role), reason=reason)
    done(as_json, f"{username} now holds: {', '.join(view.roles)}", view.to_json())


@app.command("revoke", epilog="Example:  medops user revoke carol validator --reason 'moved teams'")
def revoke(
    username: str = typer.Argument(...),
    role: str = typer.Argument(...),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Take a role away from a user."""
    with open_workspace() as ws:
        view = Services(ws).identity.revoke_role(cli_caller(ws), username, parse_role(role), reason=reason)
    done(as_json, f"{username} now holds: {', '.join(view.roles) or 'no roles'}", view.to_json())


@app.command(
    "passwd",
    epilog="Examples:  medops user passwd   ·   medops user passwd bob --password-stdin --reason 'reset on request'",
)
def passwd(
    username: str | None = typer.Argument(None, help="Whose password (default: your own)."),
    password_stdin: bool = PasswordStdin,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Change your password, or (as admin) reset someone else's."""
    with open_workspace() as ws:
        target = username or cli_caller(ws).user
        password = read_secret(None, from_stdin=password_stdin, prompt=f"New password for {target}", confirm=True)
        Services(ws).identity.set_password(cli_caller(ws), target, password, reason=reason)
    done(as_json, f"password of {target} changed", {"username": target, "password": "changed"})
