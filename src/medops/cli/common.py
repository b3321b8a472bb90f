"""What every command group shares: consoles, opening the workspace, reading secrets, tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from medops.caller import Caller
from medops.errors import InvalidInput
from medops.key_values import key_values

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from medops.config import Settings
    from medops.credentials import Credential
    from medops.workspace import Workspace

__all__ = ["key_values"]  # where the command groups take it from

SERVER_ENV = "MEDOPS_SERVER_URL"
UNWRAPPED = 10_000  # the width of output to a file or a pipe: lines stay whole for grep and cut


class _Console(Console):
    """A console as wide as the terminal, and not wrapped at all when writing to a file or a pipe
    (rich would wrap at 80 columns there, or at COLUMNS, which GNU readline exports by itself
    once any library loads it); judged by the stream at print time."""

    def _size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        if not _is_tty(self.file):
            return ConsoleDimensions(UNWRAPPED, size.height)
        return size  # type: ignore[no-any-return]

    size = property(_size, Console.size.fset)  # type: ignore[attr-defined]


def _is_tty(stream: object) -> bool:
    try:
        return bool(getattr(stream, "isatty", lambda: False)())
    except ValueError:  # a closed stream
        return False


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one greppable line

ReasonOption = typer.Option(None, "--reason", "-r", help="Why: recorded in the audit trail with the change.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def open_workspace(*, here: bool = False) -> Workspace:
    """The workspace of MEDOPS_HOME, or the nearest one upward from the current folder.

    ``here``: a command that runs where the workspace is (a server itself) and opens it whatever
    MEDOPS_SERVER_URL says; any other is refused while it is set (see ``local_only``).
    """
    from medops.workspace import Workspace

    if not here:
        local_only()
    return Workspace.open()


def server_url() -> str | None:
    """The platform server commands talk to (MEDOPS_SERVER_URL), if any; read here, in the adapter, and only here."""
    return os.environ.get(SERVER_ENV, "").strip() or None


def local_only() -> None:
    """While MEDOPS_SERVER_URL is set, commands talk to that server: one with no server form is refused
    (before it reads a project file or a workspace) rather than quietly acting on files here."""
    url = server_url()
    if not url:
        return
    import click

    context = click.get_current_context(silent=True)
    command = context.command_path if context is not None else "this command"
    raise InvalidInput(
        f"`{command}` works on a workspace's own files and has no platform-server form, "
        f"and MEDOPS_SERVER_URL is set ({url[:80]})",
        hint="run it on the machine that holds the workspace, with MEDOPS_SERVER_URL unset",
    )


def credential(settings: Settings) -> Credential | None:
    """What this command presents: MEDOPS_TOKEN, else the session file of `medops login`; read here, and only here."""
    from medops.credentials import presented

    return presented(settings)


def name_hint() -> str | None:
    """MEDOPS_USER: only the name `medops login` and `medops user passwd` suggest; it grants nothing."""
    from medops.credentials import user_hint

    return user_hint()


def cli_caller(ws: Workspace, *, writes: bool) -> Caller:
    """Who this command acts as: the user a verified credential proves (MEDOPS_TOKEN or the login session).

    ``writes`` says whether the command changes anything: a change always needs a credential; a
    read without one runs anonymously unless the workspace sets login_for_reads.
    """
    from medops.services import Services

    return Services(ws).identity.caller(credential(ws.settings), writes=writes)


def read_secret(
    value: str | None,
    *,
    from_stdin: bool,
    prompt: str,
    confirm: bool,
    env: str | None = None,
    option: str = "--password-stdin",
) -> str:
    """A password from --password-stdin (one line each time one is asked for), an environment variable, or a prompt."""
    if value:
        return value
    if from_stdin:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise InvalidInput(f"{option} was given but standard input had no line for: {prompt}")
        return line
    if env and os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        hint = f"pipe it with {option}{f' or set {env}' if env else ''}"
        raise InvalidInput(f"{prompt} is needed and there is no terminal to ask on", hint=hint)
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table whose cells read as text: numbers rounded, nothing printed as None or as a Python dict."""
    out = Table(title=title, show_lines=False)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*[escape(cell(v)) for v in row])
    console.print(out)


def cell(value: Any) -> str:
    """One value as a person reads it: 0.8123 not 0.812345678, "" not None, a=1, b=2 not {'a': 1, 'b': 2}."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_nested(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_nested(v) for v in value)
    return str(value)


def _nested(value: Any) -> str:
    """A value inside a mapping or a list: bracketed when it holds several, so the outer commas stay clear."""
    if isinstance(value, dict):
        return f"({cell(value)})"
    if isinstance(value, list | tuple | set | frozenset):
        return f"[{cell(value)}]"
    return cell(value)


def when(moment: datetime | str | None, *, seconds: bool = True) -> str:
    """A time as a person reads it (UTC, no fraction), from a record or from its JSON document's text."""
    if not moment:
        return ""
    if isinstance(moment, str):
        try:
            return when(datetime.fromisoformat(moment), seconds=seconds)
        except ValueError:
            return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,200 entities``: the count with the word in the right number."""
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in tuple("aeiou") else word + "s"
    return f"{count:,} {word if count == 1 else many}"


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def progress_bar(*columns: ProgressColumn, enabled: bool = True) -> Progress:
    """A progress bar on stderr for a person at a terminal; nothing at all in a log, a pipe or with --json."""
    from rich.progress import Progress

    return Progress(*columns, console=err_console, transient=True, disable=not (enabled and err_console.is_terminal))


def ok(message: str) -> None:
    console.print(f"[green]✓[/] {escape(message)}")


def done(as_json: bool, message: str, doc: Any) -> None:
    """The end of an action: a ✓ line for people, or the same facts as one JSON document for scripts."""
    if as_json:
        print_json(doc)
    else:
        ok(message)


def path_arg(value: Path) -> Path:
    return value.expanduser()


def channels_of(spec: Any) -> Any:
    """A monitor section's channels with their secrets, read from this process's environment (the adapter's job)."""
    from medops.monitoring.channels import Channels

    named = [c.secret_env for c in (spec.channels.webhook,) if c is not None]
    if spec.channels.email is not None:
        named += [n for n in (spec.channels.email.username_env, spec.channels.email.password_env) if n]
    return Channels(spec.channels, {n: os.environ[n] for n in named if n in os.environ})
