"""`medops evidence`: who, what, when, why and with which data, for one prediction or one model version,
as a page a person reads, a JSON document, and a package a verifier checks offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from medops.atomic import write_atomic
from medops.cli import remote
from medops.cli.common import JsonOption, cli_caller, console, err_console, ok, open_workspace, print_json
from medops.errors import InvalidInput

if TYPE_CHECKING:
    from medops.services.evidence import Evidence

app = typer.Typer()  # its help line is set where it is registered (cli/main.py)

OutOption = typer.Option(
    None,
    "--out",
    metavar="DIR",
    help="Write the package here (a new folder): evidence.json, evidence.html, the raw records, and a manifest "
    "signed with the workspace key.",
)
HtmlOption = typer.Option(None, "--html", metavar="FILE", help="Also write the self-contained HTML page here.")


@app.command(
    "prediction",
    epilog="Examples:  medops evidence prediction 3f2a9c1e --out evidence-3f2a9c1e   ·   "
    "medops evidence prediction 3f2a9c1e --html prediction.html",
)
def prediction(
    prediction_id: str = typer.Argument(..., help="The prediction's id (medops predictions list)."),
    out: Path | None = OutOption,
    html: Path | None = HtmlOption,
    as_json: bool = JsonOption,
) -> None:
    """The evidence behind one prediction: the model version and bundle that made it, the signatures and the
    evaluation it was released on, its training run and data back to the source files, the audit excerpt with
    the chain verified, and the prediction scored again. Auditors and admins; the export is audited."""
    path = f"/v1/evidence/predictions/{remote.segment(prediction_id)}"
    _hand_out(path, lambda s, caller: s.evidence.prediction(caller, prediction_id, out=out), out, html, as_json)


@app.command(
    "model",
    epilog="Examples:  medops evidence model readmission_30d:3 --out release-3   ·   "
    "medops evidence model readmission_30d:3 --json > release-3.json",
)
def model(
    ref: str = typer.Argument(..., help="The model version, NAME:VERSION."),
    out: Path | None = OutOption,
    html: Path | None = HtmlOption,
    as_json: bool = JsonOption,
) -> None:
    """A version's release file: intended use, data lineage to the source files, the validation (gates,
    subgroups, robustness), approvals, life in production since (windows, alerts and their handling), what
    changed against the production version before it, and the EU AI Act Annex IV outline. Auditors and admins;
    the export is audited."""
    path = f"/v1/evidence/models/{remote.segment(ref)}"
    _hand_out(path, lambda s, caller: s.evidence.model(caller, ref, out=out), out, html, as_json)


@app.command(
    "verify",
    epilog='Examples:  medops evidence verify release-3 --public-key "$(cat workspace.pub)"',
)
def verify(
    folder: Path = typer.Argument(..., help="The folder `--out` wrote."),
    public_key: str = typer.Option(
        ...,
        "--public-key",
        metavar="KEY",
        help="The workspace's public key (base64; `medops models public-key` there), obtained out of band.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check a package offline: its manifest's signature with the workspace's public key, then every file
    against the manifest. Needs no workspace, database or server. Exit 0 if intact; else 1, naming each file
    changed, missing or added."""
    from medops.evidence.package import verify as check_package
    from medops.public_keys import decode_public

    try:
        key = decode_public(public_key.strip())
    except ValueError:
        raise InvalidInput(
            "--public-key is not an Ed25519 public key in base64", hint="medops models public-key prints it"
        ) from None
    found = check_package(folder, key)
    if as_json:
        print_json(found.to_json())
    elif found.ok:
        manifest = found.manifest
        ok(f"evidence intact: {found.checked} files match the manifest signed by key {manifest['key_id']}")
        console.print(f"  {escape(manifest['subject'])}, made {manifest['made_at']} by {escape(manifest['made_by'])}")
    else:
        for problem in found.problems:
            err_console.print(f"[red]{escape(problem['file'])}:[/] {escape(problem['problem'])}")
    if not found.ok:
        raise typer.Exit(1)


def _hand_out(path: str, gather: Any, out: Path | None, html: Path | None, as_json: bool) -> None:
    """The evidence from the workspace here, or the document from the platform server (MEDOPS_SERVER_URL);
    the signed package is written only where the workspace key is."""
    from medops.evidence import render

    written = None
    if remote.server_url():
        if out is not None:
            raise InvalidInput(
                "--out writes a package signed with the workspace key, which stays with the workspace, and "
                "MEDOPS_SERVER_URL is set",
                hint="run it on the workspace's host with MEDOPS_SERVER_URL unset, or take --json or --html "
                "from the server",
            )
        with err_console.status("the server gathers the evidence and verifies it…"):
            document = remote.client().get(path)
    else:
        from medops.services import Services

        with open_workspace() as ws, err_console.status("gathering the evidence and verifying it…"):
            evidence: Evidence = gather(Services(ws), cli_caller(ws, writes=True))
        document, written = evidence.document, evidence.written
    if html is not None:
        write_atomic(html, render.html(document))
    if as_json:
        print_json(document)
        return
    _summary(document)
    if written is not None:
        ok(f"package written to {escape(str(written.folder))}: {written.files} files, "
           f"manifest sha256:{written.manifest_sha256[:16]}")  # fmt: skip
    if html is not None:
        ok(f"page written to {escape(str(html))}")


def _summary(doc: dict[str, Any]) -> None:
    """The checks redone for this evidence, one line each."""
    console.print(f"[bold]evidence for {escape(doc['subject'])}[/]")
    bundle = doc["bundle"]
    said = bundle.get("problem") or "signature and checksums verify"
    _line(bundle["verified"], f"bundle sha256:{bundle['sha256'][:16]}", said)
    decisions = doc["approvals"]["decisions"]
    valid = sum(1 for d in decisions if d["valid"])
    lacking = "; ".join(doc["approvals"]["missing"])
    said = f"{valid} of {len(decisions)} verify" + (f"; production lacks {lacking}" if lacking else "")
    _line(bool(decisions) and valid == len(decisions), "signatures", said)
    if doc.get("evaluation"):
        ev = doc["evaluation"]
        held = ev["passed"] and ev["governing"]
        said = "passed under the reviewed policy" if held else "did not pass under the reviewed policy"
        _line(held, f"evaluation {ev['id'][:12]}", said)
    chain = doc["audit"]["chain"]
    problems = "; ".join(p["detail"] for p in chain["problems"])
    said = f"{chain['checked']} events verified, {len(doc['audit']['events'])} about this" if chain["ok"] else problems
    _line(chain["ok"], "audit chain", said)
    if doc.get("replay"):
        replay = doc["replay"]
        found = [f"{d['what']}: logged {d['logged']}, now {d['replayed']}" for d in replay["differences"]]
        said = "the same probability and decision" if replay["identical"] else "; ".join(found)
        _line(replay["identical"], "replay", said or replay.get("problem", ""))
    if doc.get("annex_iv"):
        missing = [s["section"] for s in doc["annex_iv"] if s["status"] != "filled"]
        filled = len(doc["annex_iv"]) - len(missing)
        console.print(f"  Annex IV: {filled} sections filled from the records; to be supplied: {', '.join(missing)}")


def _line(good: bool, what: str, said: str) -> None:
    mark = "[green]✓[/]" if good else "[red]✗[/]"
    console.print(f"  {mark} {escape(what)}: {escape(said)}")
