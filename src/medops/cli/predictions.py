"""`medops predictions list|show|export|replay`: the log of every answer the served models gave."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    cli_caller,
    console,
    done,
    open_workspace,
    path_arg,
    print_json,
    table,
    when,
)
from medops.clock import to_iso
from medops.serving.prediction_log import VARIANTS, PredictionFilter

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

ModelOpt = typer.Option(None, "--model", "-m", metavar="NAME[:VERSION]", help="Only this model (or version).")
SinceOpt = typer.Option(
    None,
    "--since",
    metavar="TIME",
    help="From this UTC time (ISO 8601, e.g. 2026-12-01) or this long ago (30m, 24h, 7d).",
)
UntilOpt = typer.Option(None, "--until", metavar="TIME", help="Before this UTC time (ISO 8601) or this long ago.")
EntityOpt = typer.Option(
    None, "--entity", metavar="KEY=PSEUDONYM", help="Only this entity, as logged: patient_id=pat_… (never a raw id)."
)
VariantOpt = typer.Option(None, "--variant", metavar="VARIANT", help=f"Only {', '.join(VARIANTS)} answers.")


@app.command(
    "list", epilog="Examples:  medops predictions list   ·   medops predictions list --model readmission --since 24h"
)
def list_cmd(
    model: str | None = ModelOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    entity: str | None = EntityOpt,
    variant: str | None = VariantOpt,
    limit: int = typer.Option(50, "--limit", min=1, max=100_000, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Logged predictions, newest first: when, which model version, the answer, who asked, how long it took."""
    # parsed here, so a bad filter is refused naming the CLI's options in either mode, and a time
    # given as "24h" is one instant for every page the server sends
    where = PredictionFilter.parse(model, since, until, entity, variant, prefix="--")
    moments = {k: to_iso(v) for k, v in {"since": where.since, "until": where.until}.items() if v is not None}
    query = {"model": model, **moments, "entity": entity, "variant": variant}
    found = remote.read_list(
        "/v1/predictions",
        lambda services, caller: [p.to_json() for p in services.predictions.list(caller, where, limit=limit)],
        limit=limit,
        params={k: v for k, v in query.items() if v is not None},
    )
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["prediction", "when", "model", "variant", "probability", "decision", "caller", "ms"],
        [
            [
                p["id"],
                when(p["at"]),
                f"{p['model']}:{p['version']}",
                p["variant"],
                f"{float(p['output']['probability']):.4f}",
                p["output"].get("decision"),
                p["caller"],
                f"{p['latency_ms']:.1f}",
            ]
            for p in found
        ],
    )


@app.command("show", epilog="Examples:  medops predictions show 6f1c2a9e-…   ·   ... --json")
def show_cmd(
    prediction_id: str = typer.Argument(..., metavar="ID", help="The prediction id the response carried."),
    as_json: bool = JsonOption,
) -> None:
    """One prediction in full: the model version and bundle, the scored row, the answer, its explanation."""
    found: dict[str, Any] = remote.read(
        f"/v1/predictions/{remote.segment(prediction_id)}",
        lambda services, caller: services.predictions.show(caller, prediction_id).to_json(),
    )
    if as_json:
        print_json(found)
        return
    at = datetime.fromisoformat(found["at"]).isoformat()
    console.print(
        f"prediction {found['id']}: {found['model']}:{found['version']} ({found['variant']}) at {at} "
        f"for {escape(found['caller'])}, {found['latency_ms']:.1f} ms"
    )
    console.print(f"bundle {found['bundle_sha256']}")
    if found["entity"]:
        console.print(f"entity {escape(found['entity'])}")
    table("answer", ["field", "value"], [[k, v] for k, v in found["output"].items()])
    table("scored row", ["feature", "value"], [[k, v] for k, v in found["inputs"].items()])
    if found["explanation"]:
        contributions = found["explanation"].get("contributions", {})
        ranked = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
        table("explanation", ["feature", "contribution"], [[k, f"{v:+.4f}"] for k, v in ranked])


@app.command(
    "export",
    epilog="Examples:  medops predictions export --out log.parquet --since 7d   ·   ... --out log.jsonl -m readmission",
)
def export_cmd(
    out: Path = typer.Option(..., "--out", "-o", callback=path_arg, help="The file to write: .parquet or .jsonl."),
    model: str | None = ModelOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    entity: str | None = EntityOpt,
    variant: str | None = VariantOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the file if it exists."),
    as_json: bool = JsonOption,
) -> None:
    """Every matching prediction in time order, written whole or not at all; the export is audited."""
    from medops.services import Services

    where = PredictionFilter.parse(model, since, until, entity, variant, prefix="--")
    with open_workspace() as ws:
        result = Services(ws).predictions.export(cli_caller(ws, writes=True), where, out, overwrite=overwrite)
    done(as_json, f"{result.rows:,} predictions written to {result.path} ({result.format})", result.to_json())


@app.command(
    "replay",
    epilog="Examples:  medops predictions replay   ·   medops predictions replay --model readmission --since 24h",
)
def replay_cmd(
    model: str | None = ModelOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    entity: str | None = EntityOpt,
    variant: str | None = VariantOpt,
    as_json: bool = JsonOption,
) -> None:
    """Re-score logged inputs with the verified bundle that answered them; exits 1 if any answer differs."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from medops.cli.common import progress_bar
    from medops.services import Services

    where = PredictionFilter.parse(model, since, until, entity, variant, prefix="--")
    with open_workspace() as ws:
        predictions, caller = Services(ws).predictions, cli_caller(ws, writes=True)
        total = predictions.count(caller, where)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with progress_bar(*columns, enabled=not as_json) as bar:
            task = bar.add_task("replay", total=total)
            report = predictions.replay(caller, where, on_rows=lambda n: bar.advance(task, n))
    if as_json:
        print_json(report.to_json())
    else:
        versions = ", ".join(f"{k} ({n:,})" for k, n in report.versions.items()) or "none"
        console.print(f"{report.replayed:,} predictions replayed: {versions}")
        if report.differences:
            table(
                f"{len(report.differences):,} differ",
                ["prediction", "model", "what", "logged", "replayed"],
                [[d.id, f"{d.model}:{d.version}", d.what, d.logged, d.replayed] for d in report.differences[:100]],
            )
        else:
            console.print("every replayed answer is identical to the logged one")
    if report.differences:
        raise typer.Exit(1)
