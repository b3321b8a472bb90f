"""`medops audit`: read, verify and export the tamper-evident audit trail."""

from __future__ import annotations

import binascii
import sys
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape

from medops.audit import AuditFilter
from medops.audit.query import read_export
from medops.audit.state_check import StateCheck
from medops.audit.verify import verify_rows
from medops.cli.common import (
    JsonOption,
    cell,
    cli_caller,
    console,
    done,
    err_console,
    ok,
    open_workspace,
    plural,
    print_json,
    table,
)
from medops.errors import InvalidInput
from medops.public_keys import decode_public
from medops.services import Services
from medops.services.audit import verification_json

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

EntityOpt = typer.Option(None, "--entity", "-e", help="Entity type, or type:id (e.g. user:alice).")
ActorOpt = typer.Option(None, "--actor", "-a", help="Only events by this user.")
ActionOpt = typer.Option(None, "--action", help="Action name; a trailing * matches a prefix (user.*).")
SinceOpt = typer.Option(None, "--since", metavar="TIME", help="From this UTC time (ISO 8601, e.g. 2026-11-01).")
UntilOpt = typer.Option(None, "--until", metavar="TIME", help="Up to this UTC time (ISO 8601).")


def _short(value: object, width: int = 60) -> str:
    text = cell(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command(
    "log",
    epilog=(
        "Examples:  medops audit log --entity user:alice   ·   "
        "medops audit log --action 'user.*' --since 2026-11-01 --json"
    ),
)
def log(
    entity: str | None = EntityOpt,
    actor: str | None = ActorOpt,
    action: str | None = ActionOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many events, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """List audit events, newest first, filtered by entity, actor, action and time."""
    with open_workspace() as ws:
        events = Services(ws).audit.log(
            cli_caller(ws, writes=False), AuditFilter.parse(entity, actor, action, since, until), limit=limit
        )
    if as_json:
        print_json([e.as_dict() for e in events])
        return
    table(
        None,
        ["seq", "time (UTC)", "actor", "action", "entity", "change", "reason"],
        [
            (
                e.seq,
                e.ts.replace("T", " ")[:19],
                e.actor,
                e.action,
                f"{e.entity_type}:{e.entity_id}",
                _short(e.after if e.after is not None else e.before),
                e.reason or "",
            )
            for e in events
        ],
    )


@app.command(
    "verify",
    epilog=(
        "Examples:  medops audit verify && echo intact   ·   medops audit verify --export trail.jsonl   ·   "
        'medops audit verify --public-key "$(cat workspace.pub)"'
    ),
)
def verify(
    as_json: bool = JsonOption,
    export_file: Path | None = typer.Option(
        None, "--export", help="Verify an export file (.jsonl or .csv) instead of the database."
    ),
    public_key: str | None = typer.Option(
        None,
        "--public-key",
        metavar="KEY",
        help="The workspace's public key (base64), for a verifier without the signing key.",
    ),
    state: bool = typer.Option(
        False,
        "--state",
        help="Also check every governed row (users, roles, tokens, models, stages, approvals, evaluations, "
        "trusted keys) against the state its latest event recorded: names each row changed outside medops.",
    ),
) -> None:
    """Recompute the whole hash chain and hold it against every signed checkpoint.

    Exit 0 if intact; else exit 1 naming each problem: the first broken event and what
    happened to it (altered, deleted, inserted, reordered), a trail cut back or restored
    below its newest checkpoint, events no checkpoint covers, times that go backwards.
    Checkpoints are published to the checkpoint store when changes commit; verifying only reads.
    """
    if export_file is not None:
        _verify_export(export_file)
        return
    trusted = _public_key(public_key) if public_key else None
    with open_workspace() as ws, err_console.status("verifying the audit chain…"):
        services = Services(ws)
        report = services.audit.verify(cli_caller(ws, writes=False), public_key=trusted)
        rows = services.audit.verify_state(cli_caller(ws, writes=False)) if state else None
    chain = report.chain
    if as_json:
        print_json(verification_json(report, rows))
    elif report.ok:
        ok(f"audit chain intact: {plural(chain.checked, 'event')}, head {chain.head_seq} {chain.head_hash}")
        if report.anchored_at:
            console.print(
                f"  matches {plural(report.checkpoints, 'signed checkpoint')}, the newest at event {report.anchored_at}"
            )
        if report.timestamps:
            console.print(f"  {plural(report.timestamps, 'timestamp token')} verified")
    else:
        for problem in report.problems:
            where = f"event {problem.seq}" if problem.seq else "the checkpoint store"
            err_console.print(f"[red]audit trail BROKEN at {where} ({problem.kind}):[/] {escape(problem.detail)}")
        if chain.ok:
            err_console.print(f"the chain itself links up to event {chain.head_seq}; the checkpoints show the rest")
        else:
            err_console.print(f"events 1 to {chain.head_seq} verified before the break")
    if not as_json:
        for warning in report.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}")
        if rows is not None:
            _print_state(rows)
    if not report.ok or (rows is not None and not rows.ok):
        raise typer.Exit(1)


def _print_state(rows: StateCheck) -> None:
    if rows.ok:
        ok(f"governed state explained: {plural(rows.checked, 'row')} match their latest events")
    else:
        err_console.print(f"[red]{plural(len(rows.problems), 'governed row')} changed outside medops:[/]")
        for p in rows.problems:
            err_console.print(f"  {p.entity_type}:{escape(p.entity_id)} ({p.kind}): {escape(p.detail)}")
    if rows.unhashed:
        console.print(
            f"  {plural(len(rows.unhashed), 'entity', 'entities')} last changed before state hashing "
            "(not checked until their next change)"
        )


def _public_key(text: str) -> Ed25519PublicKey:
    try:
        return decode_public(text.strip())
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput(
            "--public-key is not a base64 Ed25519 public key",
            hint="give the key `medops models public-key` prints on the machine that holds the signing key",
        ) from exc


@app.command(
    "anchor",
    epilog="Examples:  medops audit anchor --reason 'trail from before per-change checkpoints, verified by QA'",
)
def anchor(
    reason: str = typer.Option(..., "--reason", help="Why: recorded in the trail."),
    as_json: bool = JsonOption,
) -> None:
    """Anchor a trail written before every change published its checkpoint (admins, once).

    The chain must verify and the checkpoint store must be empty; the checkpoint then
    covers every event from the first.
    """
    with open_workspace() as ws:
        seq = Services(ws).audit.anchor(cli_caller(ws, writes=True), reason)
    done(as_json, f"audit trail anchored through event {seq}", {"anchored_through": seq})


def _verify_export(path: Path) -> None:
    """An auditor's offline check: the export alone, no workspace or database needed."""
    result = verify_rows(read_export(path))
    if result.ok:
        ok(f"export intact: {plural(result.checked, 'event')}, head {result.head_seq} {result.head_hash}")
        console.print("  compare the head with a signed checkpoint to know nothing was cut off the end")
        return
    assert result.problem is not None
    err_console.print(
        f"[red]export BROKEN at event {result.problem.seq} ({result.problem.kind}):[/] {escape(result.problem.detail)}"
    )
    raise typer.Exit(1)


@app.command(
    "export",
    epilog=(
        "Examples:  medops audit export --format csv -o trail.csv   ·   "
        "medops audit export --format jsonl --since 2026-01-01 > trail.jsonl"
    ),
)
def export_cmd(
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    entity: str | None = EntityOpt,
    actor: str | None = ActorOpt,
    action: str | None = ActionOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    as_json: bool = typer.Option(False, "--json", help="With -o: print a JSON summary instead of a line."),
) -> None:
    """Export events with every field needed to re-verify the chain (for auditors and admins)."""
    if as_json and output is None:
        raise InvalidInput("--json needs -o FILE: without it the export itself goes to standard output")
    flt = AuditFilter.parse(entity, actor, action, since, until)
    with open_workspace() as ws:
        audit = Services(ws).audit
        if output is None:
            count = audit.export(cli_caller(ws, writes=False), sys.stdout, fmt, flt)
        else:
            tmp = output.with_name(f".{output.name}.partial")
            try:
                with open(tmp, "w", encoding="utf-8", newline="") as out:
                    count = audit.export(cli_caller(ws, writes=False), out, fmt, flt)
            except BaseException:
                tmp.unlink(missing_ok=True)  # a refused or failed export leaves no file behind
                raise
            tmp.replace(output)
    if output is not None:
        done(
            as_json,
            f"exported {plural(count, 'event')} to {output}",
            {"events": count, "format": fmt, "output": str(output)},
        )
