"""`medops init` and `medops doctor`: create a workspace, and check one."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
from rich.markup import escape

from medops.cli.common import console, err_console, ok, read_secret, table
from medops.doctor import FAIL, OK, WARN, run_checks
from medops.errors import InvalidInput
from medops.pipelines.templates import templates
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
    artifact_root: str | None = typer.Option(None, "--artifact-root", help="Artifact folder or fsspec URL."),
    template: str | None = typer.Option(
        None, "--template", help="Also scaffold a project: medops.yaml, contracts and synthetic raw data (readmission)."
    ),
    patients: int = typer.Option(2000, "--patients", min=1, help="Synthetic patients for --template."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic data for --template."),
) -> None:
    """Create a workspace: medops.toml, metadata database, artifact folder, signing key, first admin.

    The admin password comes from --password-stdin, MEDOPS_ADMIN_PASSWORD, or a prompt; with
    none of them and no terminal, a random one is generated and shown once.
    """
    if template is not None and template not in templates():
        raise InvalidInput(f"unknown template {template!r}", hint=f"templates: {', '.join(templates())}")
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
    ws.close()
    ok(f"workspace created in {ws.settings.home}")
    if template is not None:
        with console.status(f"scaffolding the {template} project with {patients:,} synthetic patients…"):
            from medops.pipelines.templates import scaffold

            files = scaffold(ws.settings.home, template, patients=patients, seed=seed)
        ok(f"project {template}: {len(files)} files (medops.yaml, contracts/, raw/ synthetic data)")
    console.print(f"  metadata   {escape(ws.db.display_url)}")
    console.print(f"  artifacts  {escape(ws.settings.artifact_root)}")
    console.print(f"  admin      {escape(admin)}")
    console.print(f"  key file   {escape(ws.settings.signing_key_file)} (keep it private; back it up)")
    if generated:
        console.print(f"  password   [bold]{escape(password)}[/]  (shown once: store it now)")
    if template is not None:
        console.print("Next: [bold]medops project check[/], then [bold]medops data ingest --all[/].")
    else:
        console.print("Next: [bold]medops doctor[/] to check it, [bold]medops user add[/] to add people.")


def doctor(
    show_config: bool = typer.Option(True, "--config/--no-config", help="Print the effective settings."),
) -> None:
    """Check the workspace: config, database and schema, artifact store, signing key, servers.

    Exits 1 if any check fails; each failure says what to fix.
    """
    settings, checks = run_checks()
    if settings is not None and show_config:
        table("effective settings (secrets redacted)", ["setting", "value"], sorted(settings.redacted().items()))
    marks = {OK: "[green]ok[/]", WARN: "[yellow]warn[/]", FAIL: "[red]FAIL[/]"}
    for check in checks:
        console.print(f"{marks[check.status]:>14}  {escape(check.name)}: {escape(check.detail)}")
        if check.fix:
            console.print(f"{'':>6}fix: {escape(check.fix)}")
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        err_console.print(f"[red]{len(failed)} check(s) failed[/]")
        raise typer.Exit(1)
    ok("all checks passed")
