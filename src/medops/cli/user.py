"""`medops user`: people, their roles and passwords. Only admins change users."""

from __future__ import annotations

import typer

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    ReasonOption,
    done,
    name_hint,
    open_workspace,
    print_json,
    read_secret,
    table,
    when,
)
from medops.errors import InvalidInput, MedopsError
from medops.identity import parse_role, parse_roles
from medops.services import Services

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

PasswordStdin = typer.Option(False, "--password-stdin", help="Read the password from stdin instead of a prompt.")


def _user_path(username: str, *rest: str) -> str:
    """A user's API path, each segment escaped (a name is user input)."""
    return "/".join(["/v1/users", remote.segment(username), *(remote.segment(r) for r in rest)])


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
    user = remote.change(
        "POST",
        "/v1/users",
        lambda services, caller: services.identity.add_user(
            caller, username, name, password, roles, reason=reason
        ).to_json(),
        body={
            "username": username,
            "full_name": name,
            "password": password,
            "roles": [r.value for r in roles],
            "reason": reason,
        },
    )
    done(as_json, f"user {user['username']} added with roles: {', '.join(user['roles']) or 'none'}", user)


@app.command("list", epilog="Example:  medops user list --json")
def list_users(as_json: bool = JsonOption) -> None:
    """List users, their roles and whether they are active."""
    users = remote.read("/v1/users", lambda services, caller: [u.to_json() for u in services.identity.users(caller)])
    if as_json:
        print_json(users)
        return
    table(
        None,
        ["user", "name", "roles", "active", "created (UTC)"],
        [
            (
                u["username"],
                u["full_name"],
                ", ".join(u["roles"]),
                "yes" if u["active"] else "no",
                when(u["created_at"], seconds=False),
            )
            for u in users
        ],
    )


@app.command("disable", epilog="Example:  medops user disable bob --reason 'left the company'")
def disable(username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Disable a user: they can no longer act, sign or use tokens. Users are never deleted."""
    user = remote.change(
        "POST",
        _user_path(username, "disable"),
        lambda services, caller: services.identity.disable(caller, username, reason=reason).to_json(),
        body={"reason": reason},
    )
    done(as_json, f"user {username} disabled", user)


@app.command("enable", epilog="Example:  medops user enable bob --reason 'locked out after typos; identity checked'")
def enable(username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Enable a disabled or locked user again (admins); a locked user's count of failed logins starts again."""
    user = remote.change(
        "POST",
        _user_path(username, "enable"),
        lambda services, caller: services.identity.enable(caller, username, reason=reason).to_json(),
        body={"reason": reason},
    )
    done(as_json, f"user {username} enabled", user)


@app.command(
    "unlink-provider", epilog="Example:  medops user unlink-provider bob --reason 'his hospital login was re-created'"
)
def unlink_provider(
    username: str = typer.Argument(...), reason: str | None = ReasonOption, as_json: bool = JsonOption
) -> None:
    """Remove the identity-provider account pinned to a user at their first OIDC login (admins, with a reason);
    their next login through the provider pins the account it comes from."""
    user = remote.change(
        "DELETE",
        _user_path(username, "provider-links"),
        lambda services, caller: services.identity.unlink_provider(caller, username, reason=reason).to_json(),
        params={"reason": reason},
    )
    done(as_json, f"user {username}: identity-provider accounts unlinked", user)


@app.command("grant", epilog="Example:  medops user grant carol validator --reason 'QA lead for study 12'")
def grant(
    username: str = typer.Argument(...),
    role: str = typer.Argument(...),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a user a role."""
    given = parse_role(role)
    user = remote.change(
        "POST",
        _user_path(username, "roles", given.value),
        lambda services, caller: services.identity.grant(caller, username, given, reason=reason).to_json(),
        body={"reason": reason},
    )
    done(as_json, f"{username} now holds: {', '.join(user['roles'])}", user)


@app.command("revoke", epilog="Example:  medops user revoke carol validator --reason 'moved teams'")
def revoke(
    username: str = typer.Argument(...),
    role: str = typer.Argument(...),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Take a role away from a user."""
    taken = parse_role(role)
    user = remote.change(
        "DELETE",
        _user_path(username, "roles", taken.value),
        lambda services, caller: services.identity.revoke_role(caller, username, taken, reason=reason).to_json(),
        params={"reason": reason},
    )
    done(as_json, f"{username} now holds: {', '.join(user['roles']) or 'no roles'}", user)


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
    try:
        me = remote.acting_user()
    except MedopsError:
        me = None  # an ended session (a reset ends them all) still lets its user change the password
    target = username or me or name_hint()
    if target is None:
        raise InvalidInput("whose password? name the user: medops user passwd NAME")
    if me is not None and target != me:
        temporary = read_secret(
            None, from_stdin=password_stdin, prompt=f"Temporary password for {target}", confirm=True
        )
        user = remote.change(
            "POST",
            _user_path(target, "password-reset"),
            lambda services, caller: services.identity.reset_password(
                caller, target, temporary, reason=reason
            ).to_json(),
            body={"temporary_password": temporary, "reason": reason},
        )
        message = f"password of {target} reset: they must change it before they can log in or sign"
        doc = {"username": user["username"], "password": "reset", "must_change_password": user["must_change_password"]}
    else:
        old = read_secret(None, from_stdin=password_stdin, prompt=f"Current password for {target}", confirm=False)
        new = read_secret(None, from_stdin=password_stdin, prompt=f"New password for {target}", confirm=True)
        _change_own_password(target, old, new)
        message = f"password of {target} changed"
        doc = {"username": target, "password": "changed", "must_change_password": False}
    done(as_json, message, doc)


def _change_own_password(username: str, old: str, new: str) -> None:
    """The old password is the proof, here as on the server: no session is needed (a reset ended them)."""
    url = remote.server_url()
    if url:
        from medops.client import Client

        Client(url, "").post("/v1/auth/password", {"username": username, "old_password": old, "new_password": new})
        return
    with open_workspace() as ws:
        Services(ws).identity.change_password(username, old, new)
