"""`medops audit`: read, verify and export the tamper-evident audit trail."""

from __future__ import annotations

import binascii
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape

from medops.audit import AuditFilter
from medops.audit.query import export_format, read_export
from medops.audit.verify import verify_rows
from medops.cli import remote
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
    where = AuditFilter.parse(entity, actor, action, since, until)  # a bad filter is refused here, either way
    events = remote.read_list(
        "/v1/audit/events",
        lambda services, caller: [e.as_dict() for e in services.audit.log(caller, where, limit=limit)],
        limit=limit,
        params=_filter_params(entity, actor, action, since, until),
    )
    if as_json:
        print_json(events)
        return
    table(
        None,
        ["seq", "time (UTC)", "actor", "action", "entity", "change", "reason"],
        [
            (
                e["seq"],
                e["ts"].replace("T", " ")[:19],
                e["actor"],
                e["action"],
                f"{e['entity_type']}:{e['entity_id']}",
                _short(e["after"] if e["after"] is not None else e["before"]),
                e["reason"] or "",
            )
            for e in events
        ],
    )


def _filter_params(
    entity: str | None, actor: str | None, action: str | None, since: str | None, until: str | None
) -> dict[str, str]:
    """The filter as the API's query parameters (the server parses it as this command does)."""
    given = {"entity": entity, "actor": actor, "action": action, "since": since, "until": until}
    return {k: v for k, v in given.items() if v is not None}


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
    if public_key and remote.server_url():
        raise InvalidInput(
            "--public-key checks the trail here against a key you trust; over MEDOPS_SERVER_URL the server "
            "verifies it with its own key",
            hint="run it where the workspace's database is, with MEDOPS_SERVER_URL unset, or verify an export "
            "(medops audit export, then medops audit verify --export FILE)",
        )
    trusted = _public_key(public_key) if public_key else None
    with err_console.status("verifying the audit chain…"):
        report = remote.read(
            "/v1/audit/verify",
            lambda services, caller: verification_json(
                services.audit.verify(caller, public_key=trusted),
                services.audit.verify_state(caller) if state else None,
            ),
            params={"state": True} if state else None,
        )
    if as_json:
        print_json(report)
    elif not report["problems"]:
        ok(f"audit chain intact: {plural(report['checked'], 'event')}, head {report['head_seq']} {report['head_hash']}")
        if report["anchored_at"]:
            console.print(
                f"  matches {plural(report['checkpoints'], 'signed checkpoint')}, "
                f"the newest at event {report['anchored_at']}"
            )
        if report["timestamps"]:
            console.print(f"  {plural(report['timestamps'], 'timestamp token')} verified")
    else:
        for problem in report["problems"]:
            where = f"event {problem['seq']}" if problem["seq"] else "the checkpoint store"
            err_console.print(f"[red]audit trail BROKEN at {where} ({problem['kind']}):[/] {escape(problem['detail'])}")
        if report["chain_ok"]:
            err_console.print(f"the chain itself links up to event {report['head_seq']}; the checkpoints show the rest")
        else:
            err_console.print(f"events 1 to {report['head_seq']} verified before the break")
    if not as_json:
        for warning in report["warnings"]:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}")
        if report["state"] is not None:
            _print_state(report["state"])
    if not report["ok"]:
        raise typer.Exit(1)


def _print_state(rows: dict[str, Any]) -> None:
    if rows["ok"]:
        ok(f"governed state explained: {plural(rows['checked'], 'row')} match their latest events")
    else:
        err_console.print(f"[red]{plural(len(rows['problems']), 'governed row')} changed outside medops:[/]")
        for p in rows["problems"]:
            err_console.print(f"  {escape(p['entity'])} ({p['kind']}): {escape(p['detail'])}")
    if rows["unhashed"]:
        console.print(
            f"  {plural(len(rows['unhashed']), 'entity', 'entities')} last changed before state hashing "
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
    export_format(fmt)
    if remote.server_url():
        params = {"format": fmt, **_filter_params(entity, actor, action, since, until)}
        count = _write_export(
            output, lambda out: int(remote.client().stream("/v1/audit/export", out, **params)["x-medops-events"])
        )
    else:
        with open_workspace() as ws:
            audit, caller = Services(ws).audit, cli_caller(ws, writes=False)
            count = _write_export(output, lambda out: audit.export(caller, out, fmt, flt))
    if output is not None:
        done(
            as_json,
            f"exported {plural(count, 'event')} to {output}",
            {"events": count, "format": fmt, "output": str(output)},
        )


def _write_export(output: Path | None, export: Callable[[IO[str]], int]) -> int:
    """The export on standard output, or in ``output`` whole or not at all; how many events it holds."""
    if output is None:
        return export(sys.stdout)
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            count = export(out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a refused or failed export leaves no file behind
        raise
    tmp.replace(output)
    return count
