"""The `medops` command: groups are registered here; errors become one line and an exit code.

Command modules are imported only when their command runs (or when its own help is asked
for), so `medops --version` and `medops --help` load neither the database layer nor pandas.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter, Parameter

# name: ("module:attribute", short help). The attribute `app` is a command group; any other is a command
# function, with its epilog in the module's EPILOG or NAME_EPILOG. Listed in `medops --help` order.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("workspace:init", "Create a workspace: config, database, artifact folder, signing key, first admin."),
    "doctor": ("workspace:doctor", "Check the workspace: config, database, artifacts, key, servers."),
    "login": ("session:login", "Log in (password or API token): commands then act as you, for a few hours."),
    "logout": ("session:logout", "End your login session in this workspace."),
    "whoami": ("session:whoami", "Who commands act as here, and until when."),
    "db": ("db:app", "Metadata database schema: status and upgrades."),
    "audit": ("audit:app", "The audit trail: who did what, when and why; hash-chained."),
    "user": ("user:app", "Users and roles (admins only change them; every change is audited)."),
    "token": ("token:app", "API tokens: create (shown once), list, revoke."),
    "project": ("project:app", "The project file (medops.yaml): check one, show the workspace's, add one."),
    "data": ("data:app", "Ingest sources into versioned, de-identified datasets; list, show and diff them."),
    "features": (
        "features:app",
        "Feature views: apply, training sets, online materialization, lookups and consistency checks.",
    ),
    "lineage": ("lineage:app", "The lineage graph: source files, datasets and what later steps made from them."),
    "runs": ("runs:app", "Tracked runs: search them, show one, compare two."),
    "evaluations": (
        "evaluate:app",
        "Stored clinical validations: list them, show one's gates, export its per-row predictions.",
    ),
    "models": ("models:app", "The model registry: versions, approvals, stages and aliases, rollback, history."),
    "server": ("server:server", "Serve the platform REST API: the whole workspace for a team, token and session auth."),
    "serve": ("serve:serve", "Serve registered models over HTTP: predict, describe, probes, metrics; token required."),
    "predictions": (
        "predictions:app",
        "The prediction log: list and show served answers, export them, replay them against their bundles.",
    ),
    "monitor": (
        "monitor:app",
        "Monitoring: reference profiles, and each window of the prediction log judged for drift and quality.",
    ),
    "alerts": ("alerts:app", "Monitoring alerts: list and show them, acknowledge and resolve them with a reason."),
    "evidence": (
        "evidence:app",
        "Evidence for auditors: one prediction or model version, as a page, JSON, or a signed package to verify.",
    ),
    "deploy": ("deploy:deploy", "Write a Dockerfile and Kubernetes manifests that serve a registered model."),
    "demo": ("demo:demo", "Run the lifecycle demo end to end on synthetic data."),
    "synth": ("synth:synth", "Generate synthetic clinical data, with drift scenarios."),
    "train": ("train:train", "Train the model the project file declares; the run is tracked."),
    "evaluate": ("evaluate:evaluate", "Validate a trained run against the project's policy."),
    "run": ("run:run", "Run the project file's pipeline; unchanged steps are skipped, a killed run resumes."),
    "retrain": ("retrain:retrain", "Retrain from the workspace's reviewed project file: its whole pipeline, now."),
    "scheduler": (
        "scheduler:scheduler",
        "Run the project file's schedules (cron, time zone); one scheduler at a time.",
    ),
    "pipelines": ("pipelines:app", "Pipeline runs: list them, show one's steps, why each ran, what it made."),
    "score": ("score:score", "Batch scoring: a file or dataset through a registered model, into a prediction file."),
}


def load(name: str) -> Command:
    """The click command for ``name``, importing its module now."""
    where, short_help = COMMANDS[name]
    module_name, attribute = where.split(":")
    module = import_module(f"medops.cli.{module_name}")
    command: Command
    if attribute == "app":
        group: typer.Typer = module.app
        group.info.no_args_is_help = True
        group.rich_markup_mode = "rich"
        command = typer.main.get_group(group)
        command.help = short_help
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode="rich")
        epilog = getattr(module, f"{attribute.upper()}_EPILOG", None) or module.EPILOG
        single.command(name, epilog=epilog)(getattr(module, attribute))
        command = typer.main.get_command(single)
    command.name = name
    command.short_help = short_help
    tidy_help(command)
    return command


def tidy_help(command: Command) -> None:
    """Help that reads well: paragraphs flow (no hard line breaks from docstrings), values have names
    (``--limit N``, ``--role ROLE``, ``RUN``) instead of ``<int>``, flags show no value at all."""
    if command.help:
        command.help = "\n\n".join(" ".join(p.split()) for p in command.help.split("\n\n"))
    help_option = command.get_help_option(typer.Context(command))  # made once, then cached by the command
    for param in [*command.params, *([help_option] if help_option else [])]:
        if param.metavar is None:
            param.metavar = _value_name(param)
        if param.param_type_name == "argument" and param.metavar:
            label = _type_name(param)
            param.display_type_rich = lambda ctx, label=label: label  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


def _value_name(param: Parameter) -> str:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    if param.param_type_name == "argument":
        return (param.name or "value").upper() + ("..." if param.nargs != 1 else "")
    longest = max(param.opts, key=len).lstrip("-")
    return _type_name(param) or longest.rsplit("-", 1)[-1].upper()


def _type_name(param: Parameter) -> str:
    """A value's kind when it says more than its name: N (whole number), NUMBER, PATH, TIME; text says nothing."""
    kind = param.type_descriptor.annotation  # type: ignore[attr-defined]
    if get_origin(kind) is list:
        kind = get_args(kind)[0]
    return {int: "N", float: "NUMBER", Path: "PATH", datetime: "TIME"}.get(kind, "")


class LazyGroup(TyperGroup):
    """The root group: a command is loaded when it is named; its help line comes from COMMANDS."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        if self._listing:  # the root's help: a name and a line, nothing imported
            return typer.core.TyperCommand(cmd_name, short_help=COMMANDS[cmd_name][1])
        self.commands[cmd_name] = load(cmd_name)
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """As TyperGroup's, with "did you mean" drawn from every command, loaded or not."""
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:
            from difflib import get_close_matches

            close = get_close_matches(args[0], list(COMMANDS)) if args and "Did you mean" not in exc.message else []
            if close:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(repr(c) for c in close)}?"
            raise

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        tidy_help(self)
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="medops",
    cls=LazyGroup,
    help="medops: governed MLOps for healthcare and life sciences.\n\n"
    "Start with `medops init DIR`, then `medops doctor`. Every state change is audited; "
    "`medops audit verify` proves the trail intact.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    epilog="Examples:  medops init ./ws   ·   medops demo   ·   medops login alice   ·   medops audit log --actor bob",
)


def _version(value: bool) -> None:
    if value:
        from medops import __version__

        typer.echo(f"medops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
    home: Path | None = typer.Option(
        None, "--home", metavar="DIR", help="Workspace folder (default: MEDOPS_HOME or search upward)."
    ),
) -> None:
    if home is not None:
        os.environ["MEDOPS_HOME"] = str(home.expanduser().resolve())


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a MedopsError prints cause and hint, Ctrl-C one line, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MEDOPS_DEBUG") == "1"
    try:
        code: Any = typer.main.get_command(app).main(args, "medops", standalone_mode=False)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except typer.Abort as exc:  # a prompt ended by Ctrl-C or end of input
        code = INTERRUPTED if isinstance(exc.__context__, KeyboardInterrupt) else _fail("aborted: no input", None, 1)
    except typer.TyperException as exc:  # usage errors: typer's own format
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
        code = exc.exit_code
    except Exception as exc:
        code = _failed(exc, debug)
    if code == INTERRUPTED:  # typer turns KeyboardInterrupt into exit 130, silently
        _fail("interrupted", None, INTERRUPTED, label="[yellow]")
    sys.exit(code if isinstance(code, int) else 0)


def _failed(exc: Exception, debug: bool) -> int:
    """A MedopsError prints its cause and hint; anything else is a bug, said plainly (details with --debug)."""
    from medops.errors import MedopsError

    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(exc, MedopsError):
        from medops.cli.hints import hint_for

        return _fail(exc.message, hint_for(exc), exc.exit_code)
    if isinstance(exc, OSError) and exc.strerror:  # the machine said no (a full disk, a permission): not a bug
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror}{where}", "free the space or fix the permission, then run the command again", 74)
    hint = "run again with --debug for the traceback, and report it"
    return _fail(f"{type(exc).__name__}: {exc}", hint, 70, label="[red]internal error:[/] ")


def _fail(message: str, hint: str | None, code: int, label: str = "[red]error:[/] ") -> int:
    """Print one line (and a hint) on stderr; return the exit code."""
    from rich.markup import escape

    from medops.cli.common import err_console

    err_console.print(f"{label}{escape(message)}")
    if hint:
        err_console.print(f"[dim]hint:[/] {escape(hint)}")
    return code


if __name__ == "__main__":
    main()
