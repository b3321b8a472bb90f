"""What every command group shares: consoles, opening the workspace, reading secrets, tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medops.errors import InvalidInput

if TYPE_CHECKING:
    from medops.workspace import Workspace

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one greppable line

ReasonOption = typer.Option(None, "--reason", "-r", help="Why: recorded in the audit trail with the change.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def open_workspace() -> Workspace:
    """The workspace of MEDOPS_HOME, or the nearest one upward from the current folder."""
    from medops.workspace import Workspace

    return Workspace.open()


def read_secret(value: str | None, *, from_stdin: bool, prompt: str, confirm: bool, env: str | None = None) -> str:
    """A password from --password-stdin, an environment variable, or a hidden prompt."""
    if value:
        return value
    if from_stdin:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise InvalidInput("--password-stdin was given but standard input was empty")
        return line
    if env and os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        hint = f"pipe it with --password-stdin{f' or set {env}' if env else ''}"
        raise InvalidInput(f"{prompt} is needed and there is no terminal to ask on", hint=hint)
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    out = Table(title=title, show_lines=False)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*[escape("" if v is None else str(v)) for v in row])
    console.print(out)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def ok(message: str) -> None:
    console.print(f"[green]✓[/] {escape(message)}")


def key_values(values: list[str], option: str, example: str) -> dict[str, list[str]]:
    """Repeated ``NAME=VALUE`` options, grouped by name in the order given."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {value!r} is not NAME=VALUE", hint=f"for example {option} {example}")
        out.setdefault(key, []).append(item)
    return out


def path_arg(value: Path) -> Path:
    return value.expanduser()
