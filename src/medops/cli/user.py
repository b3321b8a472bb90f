"""`medops user`: people, their roles and passwords. Only admins change users."""

from __future__ import annotations

import typer

from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cli_caller,
    credential,
    done,
    name_hint,
    open_workspace,
    print_json,
    read_secret,
    table,
)
from medops.errors import InvalidInput
from medops.identity import parse_role, parse_roles
from medops.services import Services

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
    """Add a user with roles: data_scientist, ml_engineer, validator, clinical_reviewer, auditor, admin, predictor."""
    roles = parse_roles(role)
    password = read_secret(None, from_stdin=password_stdin, prompt=f"Password for {username}", confirm=True)
    with open_workspace() as ws:
        view = Services(ws).identity.add_user(
            cli_caller(ws, writes=True), username, name, password, roles, reason=reason
        )
    done(as_json, f"user {view.username} added with roles: {', '.join(view.roles) or 'none'}", view.to_json())


@app.command("list", epilog="Example:  medops user list --json")
def list_users(as_json: bool = JsonOption) -> None:
    """List users, their roles and whether they are active."""
    with open_workspace() as ws:
        users = Services(ws).identity.users(cli_caller(ws, writes=False))
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
        Services(ws).identity.disable(cli_caller(ws, writes=True), username, reason=reason)
    done(as_json, f"user {username} disabled", {"username": username, "active": False})


@app.command("enable", epilog="Example:  medops user enable bob --reason 'locked out after typos; identity checked'")
def enable(username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Enable a disabled or locked user again (admins); a locked user's count of failed logins starts again."""
    with open_workspace() as ws:
        Services(ws).identity.enable(cli_caller(ws, writes=True), username, reason=reason)
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
        view = Services(ws).identity.grant(cli_caller(ws, writes=True), username, parse_role(role), reason=reason)
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
        view = Services(ws).identity.revoke_role(cli_caller(ws, writes=True), username, parse_role(role), reason=reason)
    done(as_json, f"{username} now holds: {', '.join(view.roles) or 'no roles'}", view.to_json())


@app.command(
    "passwd",
    epilog=(
        'Examples:  medops user passwd   ·   printf \'%s\\n\' "$OLD" "$NEW" | medops user passwd --password-stdin'
        "   ·   "
        "medops user passwd bob --reason 'forgotten; identity checked by phone'"
    ),
)
def passwd(
    username: str | None = typer.Argument(None, help="Whose password (default: yours)."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read from stdin instead of prompts: your old password then the new one (two lines); "
        "for a reset, the temporary password (one line).",
    ),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Change your own password (give the old one), or as admin reset someone else's.

    A reset sets a temporary password and ends the user's sessions: they can't log in, act or
    sign until they change it here, giving the temporary password as the old one. Nobody resets
    their own password: an admin who forgot theirs asks another admin.
    """
    from medops.errors import MedopsError

    with open_workspace() as ws:
        identity = Services(ws).identity
        found = credential(ws.settings)
        try:
            me = identity.authenticate(found.secret).user if found is not None else None
        except MedopsError:
            me = None  # an ended session (a reset ends them all) still lets its user change the password
        target = username or me or name_hint()
        if target is None:
            raise InvalidInput("whose password? name the user: medops user passwd NAME")
        if me is not None and target != me:
            caller = identity.caller(found, writes=True)
            temporary = read_secret(
                None, from_stdin=password_stdin, prompt=f"Temporary password for {target}", confirm=True
            )
            identity.reset_password(caller, target, temporary, reason=reason)
            message = f"password of {target} reset: they must change it before they can log in or sign"
            doc = {"username": target, "password": "reset", "must_change_password": True}
        else:
            old = read_secret(None, from_stdin=password_stdin, prompt=f"Current password for {target}", confirm=False)
            new = read_secret(None, from_stdin=password_stdin, prompt=f"New password for {target}", confirm=True)
            identity.change_password(target, old, new)
            message = f"password of {target} changed"
            doc = {"username": target, "password": "changed", "must_change_password": False}
    done(as_json, message, doc)
