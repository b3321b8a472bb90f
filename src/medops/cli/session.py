"""`medops login`, `logout` and `whoami`: a verified login, kept as a short-lived session for this workspace.

The session token lives in the user's own folder (see medops.credentials), readable by them only;
every command presents it (or MEDOPS_TOKEN) and medops verifies it before acting.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    console,
    credential,
    done,
    err_console,
    name_hint,
    open_workspace,
    print_json,
    read_secret,
    when,
)
from medops.credentials import TOKEN_ENV, forget_session, save_session, stored_session
from medops.errors import AuthenticationFailed, InvalidInput, MedopsError

LOGIN_EPILOG = (
    "Examples:  medops login ada   ·   medops login ada --password-stdin < pw.txt   ·   "
    'medops login --token-stdin <<< "$TOKEN"   ·   medops login ada --server https://medops.example.org'
)
LOGOUT_EPILOG = "Example:  medops logout"
WHOAMI_EPILOG = "Examples:  medops whoami   ·   medops whoami --json"
ServerOption = typer.Option(
    None,
    "--server",
    metavar="URL",
    envvar="MEDOPS_SERVER_URL",
    help="A platform server (medops server) instead of this workspace; default MEDOPS_SERVER_URL.",
)


def login(
    username: str | None = typer.Argument(None, help="Who logs in (default: MEDOPS_USER, else asked)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Log in with an API token read from stdin."),
    server: str | None = ServerOption,
    as_json: bool = JsonOption,
) -> None:
    """Log in to this workspace with your password (or an API token): later commands act as you.

    The session lasts the workspace's session_hours (12 by default) and is kept, readable by you
    only, in ~/.medops/sessions (or MEDOPS_SESSION_DIR). Five wrong passwords in a row lock the account.
    """
    if password_stdin and token_stdin:
        raise InvalidInput("give --password-stdin or --token-stdin, not both")
    if server:
        _login_to_server(server, username, password_stdin, token_stdin, as_json)
        return
    from medops.services import Services

    with open_workspace() as ws:
        identity = Services(ws).identity
        if token_stdin:
            token = read_secret(None, from_stdin=True, prompt="API token", confirm=False, option="--token-stdin")
            view, secret = identity.login(username, token=token)
        else:
            user = username or name_hint() or _ask_user(ws.settings.default_user)
            password = read_secret(None, from_stdin=password_stdin, prompt=f"Password for {user}", confirm=False)
            view, secret = identity.login(user, password=password)
        previous = stored_session(ws.settings)
        if previous is not None:  # one session per workspace and user account: the old one ends now
            try:
                identity.logout(previous.secret)
            except AuthenticationFailed:
                pass  # expired or ended already
        path = save_session(ws.settings, secret)
    expires = f"{view.expires_at:%Y-%m-%d %H:%M} UTC" if view.expires_at else "never"
    done(
        as_json,
        f"logged in as {view.username} until {expires}",
        {"user": view.username, "session": view.id, "expires_at": view.expires_at, "session_file": str(path)},
    )
    if os.environ.get(TOKEN_ENV):
        err_console.print(f"[yellow]note:[/] {TOKEN_ENV} is set: commands act as its owner until you unset it")


def _login_to_server(url: str, username: str | None, password_stdin: bool, token_stdin: bool, as_json: bool) -> None:
    """A session on a platform server, kept for that URL as a workspace's is (the SDK then finds it)."""
    from medops.client import Client
    from medops.credentials import save_server_session, stored_server_session

    if token_stdin:
        token = read_secret(None, from_stdin=True, prompt="API token", confirm=False, option="--token-stdin")
        answer = Client(url, "").post("/v1/auth/login", {"username": username, "token": token, "cookie": False})
    else:
        user = username or name_hint() or _ask_user("")
        password = read_secret(None, from_stdin=password_stdin, prompt=f"Password for {user} on {url}", confirm=False)
        _, answer = Client.log_in(url, user, password)
    previous = stored_server_session(url)
    if previous is not None:  # one session per server: the old one ends now
        try:
            Client(url, previous.secret).post("/v1/auth/logout")
        except MedopsError:
            pass  # expired or ended already
    path = save_server_session(url, answer["secret"])
    done(
        as_json,
        f"logged in to {url} as {answer['user']} until {answer['expires_at']}",
        {
            "server": url,
            "user": answer["user"],
            "session": answer["session"],
            "expires_at": answer["expires_at"],
            "session_file": str(path),
        },
    )


def _ask_user(default: str) -> str:
    if not sys.stdin.isatty():
        raise InvalidInput("who logs in? name the user: medops login NAME (or set MEDOPS_USER)")
    return str(typer.prompt("User", default=default or None))


def logout(server: str | None = ServerOption, as_json: bool = JsonOption) -> None:
    """End your session in this workspace (or on a server) and delete its file; changes then need a login."""
    if server:
        _logout_of_server(server, as_json)
        return
    from medops.services import Services

    with open_workspace() as ws:
        found = stored_session(ws.settings)
        if found is None:
            message, state = "not logged in here: nothing to end", "none"
        else:
            try:
                view = Services(ws).identity.logout(found.secret)
                message, state = f"logged out: {view.username}'s session ended", "ended"
            except AuthenticationFailed as exc:  # expired or ended already: the file goes all the same
                message, state = f"logged out ({exc.message})", "gone"
            finally:
                forget_session(ws.settings)
    done(as_json, message, {"session": state})
    if os.environ.get(TOKEN_ENV):
        err_console.print(f"[yellow]note:[/] {TOKEN_ENV} is still set: commands act as its owner")


def _logout_of_server(url: str, as_json: bool) -> None:
    from medops.client import Client
    from medops.credentials import forget_server_session, stored_server_session

    found = stored_server_session(url)
    if found is None:
        message, state = f"not logged in to {url}: nothing to end", "none"
    else:
        try:
            Client(url, found.secret).post("/v1/auth/logout")
            message, state = f"logged out of {url}", "ended"
        except AuthenticationFailed as exc:  # expired or ended already: the file goes all the same
            message, state = f"logged out ({exc.message})", "gone"
        finally:
            forget_server_session(url)
    done(as_json, message, {"server": url, "session": state})


def whoami(as_json: bool = JsonOption) -> None:
    """Who the commands here act as, through which credential, and until when; exit 1 if nobody."""
    url = remote.server_url()
    if url:
        who = {**remote.client().get("/v1/auth/whoami"), "source": _server_credential_source(url)}
    else:
        from medops.services import Services

        with open_workspace() as ws:
            found = credential(ws.settings)
            if found is None:
                raise AuthenticationFailed("not logged in to this workspace", code="login_required")
            who = remote.wire({**Services(ws).identity.identify(found.secret).to_json(), "source": found.where})
    if as_json:
        print_json(who)
        return
    until = f"until {when(who['expires_at'], seconds=False)} UTC" if who["expires_at"] else "with no expiry"
    via = "session" if who["via"] == "session" else f"API token {who['id']} ({TOKEN_ENV})"
    console.print(
        f"{escape(who['user'])} ({escape(who['full_name'])}) · roles: {escape(', '.join(who['roles']) or 'none')}"
    )
    console.print(f"  {escape(via)} {until}")


def _server_credential_source(url: str) -> str:
    """Where the credential a server's client presents comes from: MEDOPS_TOKEN, else the kept session."""
    from medops.credentials import stored_server_session

    kept = None if os.environ.get(TOKEN_ENV, "").strip() else stored_server_session(url)
    return kept.where if kept is not None else TOKEN_ENV
