"""`medops init` and `medops doctor`: create a workspace, and check one."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import JsonOption, console, credential, err_console, ok, plural, print_json, read_secret, table
from medops.config import CONFIG_FILE
from medops.credentials import save_session
from medops.doctor import FAIL, OK, WARN, report_json, run_checks
from medops.errors import Conflict, InvalidInput
from medops.filesystems import known_schemes
from medops.services import Services
from medops.services.projects.templates import templates
from medops.workspace import init_workspace

INIT_EPILOG = (
    "Examples:  medops init ./readmission   ·   "
    "medops init ./readmission --template readmission   ·   "
    "medops init ./ws --admin ada --admin-name 'Ada Lovelace' --password-stdin < pw.txt   ·   "
    "medops init ./ws --metadata-url postgresql+psycopg://postgres@127.0.0.1:5432/medops"
)
DOCTOR_EPILOG = "Example:  MEDOPS_HOME=./ws medops doctor --no-config"


def init(
    directory: Path = typer.Argument(Path("."), help="Folder for the workspace (created if missing)."),
    admin: str = typer.Option("admin", "--admin", help="User name of the first admin."),
    admin_name: str = typer.Option("Workspace Administrator", "--admin-name", help="Printed name of the first admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the admin password from stdin."),
    metadata_url: str | None = typer.Option(None, "--metadata-url", help="Database URL (default: SQLite in DIR)."),
    artifact_root: str | None = typer.Option(
        None, "--artifact-root", help=f"Artifact folder or URL ({known_schemes()}; default: DIR/artifacts)."
    ),
    template: str | None = typer.Option(
        None,
        "--template",
        help=f"Also scaffold a project: medops.yaml, contracts and synthetic raw data ({', '.join(templates())}).",
    ),
    patients: int = typer.Option(2000, "--patients", min=1, help="Synthetic patients for --template."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic data for --template."),
    force: bool = typer.Option(
        False, "--force", help="Create it even in a folder that is not empty or lies inside another workspace."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a workspace: medops.toml, metadata database, artifact folder, signing key, first admin.

    The admin password comes from --password-stdin, MEDOPS_ADMIN_PASSWORD, or a prompt; with
    none of them and no terminal, a random one is generated and shown once. The admin is then
    logged in (as `medops login` would), so the next commands act as them. The folder must be
    empty (or new) and not inside another workspace, unless --force.
    """
    if template is not None and template not in templates():
        raise InvalidInput(f"unknown template {template!r}", hint=f"templates: {', '.join(templates())}")
    if not force:
        _refuse_crowded(directory.expanduser().resolve())
    generated = False
    if password_stdin or os.environ.get("MEDOPS_ADMIN_PASSWORD") or sys.stdin.isatty():
        password = read_secret(
            None, from_stdin=password_stdin, prompt="Admin password", confirm=True, env="MEDOPS_ADMIN_PASSWORD"
        )
    else:
        password, generated = secrets.token_urlsafe(18), True
    ws = init_workspace(
        directory,
        admin_username=admin,
        admin_full_name=admin_name,
        admin_password=password,
        metadata_url=metadata_url,
        artifact_root=artifact_root,
    )
    try:
        session, secret = Services(ws).identity.login(admin, password=password)
        save_session(ws.settings, secret)
    finally:
        ws.close()
    files = scaffold_template(ws.settings.home, template, patients, seed) if template else []
    if as_json:
        print_json(
            {
                "home": str(ws.settings.home),
                "metadata_url": ws.db.display_url,
                "artifact_root": ws.settings.artifact_root,
                "admin": admin,
                "logged_in_until": session.expires_at,
                "key_file": ws.settings.signing_key_file,
                "password": password if generated else None,
                "template": template,
                "files": [str(f) for f in files],
            }
        )
        return
    ok(f"workspace created in {ws.settings.home}")
    if template is not None:
        ok(f"project {template}: {plural(len(files), 'file')} (medops.yaml, contracts/, raw/ synthetic data)")
    console.print(f"  metadata   {escape(ws.db.display_url)}")
    console.print(f"  artifacts  {escape(ws.settings.artifact_root)}")
    console.print(f"  admin      {escape(admin)} (logged in until {session.expires_at:%Y-%m-%d %H:%M} UTC)")
    console.print(f"  key file   {escape(ws.settings.signing_key_file)} (keep it private; back it up)")
    if generated:
        console.print(f"  password   [bold]{escape(password)}[/]  (shown once: store it now)")
    if template is not None:
        console.print("Next: [bold]medops project check[/], then [bold]medops data ingest --all[/].")
    else:
        console.print("Next: [bold]medops doctor[/] to check it, [bold]medops user add[/] to add people.")


def _refuse_crowded(home: Path) -> None:
    """A workspace goes in an empty or new folder, not inside another workspace: files are not mixed by accident."""
    if (home / CONFIG_FILE).exists():
        return  # init_workspace says it is a workspace already
    if home.is_dir() and any(home.iterdir()):
        raise Conflict(
            f"{home} is not empty", hint="use a new or empty folder, or --force to make the workspace here anyway"
        )
    outer = next((p for p in home.parents if (p / CONFIG_FILE).is_file()), None)
    if outer is not None:
        raise Conflict(
            f"{home} is inside the workspace at {outer}",
            hint="add a project to that workspace with `medops project new`, or --force for a nested workspace",
        )


def scaffold_template(home: Path, template: str, patients: int, seed: int) -> list[Path]:
    """A template's project in ``home``, with a spinner on stderr while its synthetic data is generated."""
    from medops.services.projects.templates import scaffold

    with err_console.status(f"scaffolding the {template} project with {plural(patients, 'synthetic patient')}…"):
        return scaffold(home, template, patients=patients, seed=seed)


def doctor(
    show_config: bool = typer.Option(True, "--config/--no-config", help="Print the effective settings."),
    as_json: bool = JsonOption,
) -> None:
    """Check the workspace: config, database and schema, artifact store, signing key, servers.

    Exits 1 if any check fails; each failure says what to fix.
    """
    if remote.server_url():
        report = remote.client().get("/v1/workspace")  # the server's workspace, as it checks it (admins)
        if not show_config:
            report["settings"] = None
    else:
        settings, checks = run_checks(credential=credential)  # who this CLI acts as: its login, or nobody
        report = report_json(settings, checks, show_config=show_config)
    failed = [c for c in report["checks"] if c["status"] == FAIL]
    if as_json:
        print_json(report)
        if failed:
            raise typer.Exit(1)
        return
    if report["settings"] is not None:
        table("effective settings (secrets redacted)", ["setting", "value"], list(report["settings"].items()))
    marks = {OK: "[green]ok[/]", WARN: "[yellow]warn[/]", FAIL: "[red]FAIL[/]"}
    for check in report["checks"]:
        console.print(f"{marks[check['status']]:>14}  {escape(check['name'])}: {escape(check['detail'])}")
        if check["fix"]:
            console.print(f"{'':>6}fix: {escape(check['fix'])}")
    if failed:
        err_console.print(f"[red]{plural(len(failed), 'check')} failed[/]")
        raise typer.Exit(1)
    ok("all checks passed")
