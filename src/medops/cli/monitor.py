"""`medops monitor profile|run|list|show`: each served model's windows judged against its reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    channels_of,
    cli_caller,
    console,
    done,
    open_workspace,
    print_json,
    progress_bar,
    table,
)
from medops.cli.data import ProjectOption
from medops.cli.predictions import SinceOpt, UntilOpt
from medops.serving.prediction_log import moment

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def _spec(project: Path | None) -> Any:
    """The named project file's ``monitor`` section (its defaults if it has none); None without --project:
    the workspace's reviewed project file governs."""
    from medops.monitoring.spec import MonitorSpec
    from medops.services.projects.project import load_project

    if project is None:
        return None
    return load_project(project.expanduser()).spec.monitor or MonitorSpec()


@app.command(
    "profile", epilog="Examples:  medops monitor profile readmission_30d:2   ·   medops monitor profile --backfill"
)
def profile_cmd(
    ref: str | None = typer.Argument(None, metavar="NAME:VERSION", help="The registered version to profile."),
    backfill: bool = typer.Option(False, "--backfill", help="Profile every trained version that has no profile."),
    as_json: bool = JsonOption,
) -> None:
    """Build and store a version's reference profile (registration does this; here for older versions).

    From the version's training rows and evaluation: per feature its missing rate, distribution and
    categories, the held-out score distribution and the validated performance per subgroup.
    """
    from medops.errors import InvalidInput
    from medops.services import Services

    if (ref is None) == (not backfill):
        raise InvalidInput("name one version, or give --backfill", hint="medops monitor profile readmission_30d:2")
    with open_workspace() as ws:
        service = Services(ws).monitoring
        caller = cli_caller(ws, writes=True)
        if ref is not None:
            info = service.profile(caller, ref)
            done(as_json, f"profiled {info.model}:{info.version} from {info.rows:,} training rows", info.to_json())
            return
        with progress_bar(SpinnerColumn(), TextColumn("{task.description}"), enabled=not as_json) as bar:
            task = bar.add_task("profiles", total=None)
            result = service.backfill(caller, progress=lambda r: bar.update(task, description=f"profiling {r}"))
    if as_json:
        print_json(result.to_json())
        return
    for made in result.profiled:
        console.print(f"[green]✓[/] profiled {made.model}:{made.version} ({made.rows:,} training rows)")
    for version, why in result.failed:
        console.print(f"[red]✗[/] {escape(version)}: {escape(why)}")
    if not result.profiled and not result.failed:
        console.print("every trained version has its profile")
    if result.failed:
        raise typer.Exit(1)


@app.command(
    "run",
    epilog="Examples:  medops monitor run readmission_30d   ·   ... --window 7d --since 2026-09-01   ·   "
    "medops monitor run readmission_30d --dataset march_batch",
)
def run_cmd(
    model: str = typer.Argument(
        ..., metavar="MODEL", help="The model whose prediction log is judged (with --dataset, NAME:VERSION too)."
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        metavar="DATASET",
        help="Judge this dataset version scored in batch (NAME or NAME@VERSION) instead of the prediction log.",
    ),
    window: str = typer.Option(
        "calendar-month", "--window", "-w", metavar="WINDOW", help="calendar-month, or days: 7d, 30d."
    ),
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    project: Path | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Judge every complete window of the model's prediction log against its reference profile.

    Per window and version: feature drift (PSI, KS, Wasserstein; chi-squared, Jensen-Shannon),
    prediction drift, missing values, out-of-range values, new categories and suspected unit
    changes; performance and bias drift once outcomes arrive. With --dataset, a dataset version scored in
    batch is the window, judged for each version of the model that scored it. The workspace's reviewed project file's
    monitor section governs: each window is stored and its alerts opened. With --project naming another
    file, the windows are judged to explore and shown, never stored, and open no alert.
    """
    from medops.services import Services

    explored = _spec(project)
    start, end = moment(since, "--since"), moment(until, "--until")
    with open_workspace() as ws:
        service = Services(ws).monitoring
        channels = channels_of(explored or service.governing())
        with progress_bar(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), enabled=not as_json
        ) as bar:
            task = bar.add_task("windows", total=None)
            found = service.run(
                cli_caller(ws, writes=True),
                model,
                window=window,
                since=start,
                until=end,
                spec=explored,
                channels=channels,
                progress=lambda span, v: bar.update(task, description=f"{span.label} (version {v})"),
                dataset=dataset,
            )
    if as_json:
        print_json(found.to_json())
        return
    if found.exploratory:
        console.print("[yellow]exploratory[/]: this project file's monitor section is not the workspace's; "
                      "nothing was stored and no alert opened")  # fmt: skip
    for version, why in found.skipped:
        console.print(f"[yellow]not judged[/]: {escape(model)}:{version}: {escape(why)}")
    if not found.windows and dataset is None:
        console.print(f"no complete {window} window of {escape(model)} to judge yet")
    else:
        _windows([w.to_json() for w in found.windows])
    for alert in found.alerts:
        sent = ", ".join(
            f"{d['channel']} {'ok' if d['delivered'] else 'FAILED: ' + d['detail']}" for d in alert.deliveries
        )
        console.print(
            f"[red]alert[/] {alert.id[:12]} {alert.severity}: {escape(alert.rule)} on {alert.model}:{alert.version} "
            f"({escape(alert.condition)}); told: {escape(sent) or '-'}"
        )
    for r in found.retrained:
        if r.run_id is not None:
            console.print(
                f"  retraining for alert {r.alert_id[:12]}: pipeline run {r.run_id[:12]} {r.state}"
                + (f" ({escape(r.error)})" if r.error else "")
                + "; medops pipelines show "
                + r.run_id[:12]
            )
        else:
            console.print(f"  [yellow]retraining for alert {r.alert_id[:12]} not started[/]: {escape(r.error or '')}")


def _windows(found: list[dict[str, Any]]) -> None:
    """Windows as their JSON documents (``WindowInfo.to_json()``), one row each."""
    table(
        None,
        ["window", "model", "rows", "judged", "drifted", "id"],
        [
            [
                w["window"],
                f"{w['model']}:{w['version']}",
                f"{w['rows']:,}",
                "yes" if w["judged"] else "too few rows",
                ", ".join(w["drifted"]) or "-",
                w["id"][:12],
            ]
            for w in found
        ],
    )


@app.command(
    "report", epilog="Examples:  medops monitor report readmission_30d   ·   ... --since 2026-01-01 -o q1.html"
)
def report_cmd(
    model: str = typer.Argument(..., metavar="MODEL", help="The registered model."),
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Where to write the HTML (default: monitoring-MODEL.html here)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the file if it exists."),
    as_json: bool = JsonOption,
) -> None:
    """Write the monitoring report: one self-contained HTML page (windows, drift, predictions,
    performance with intervals, subgroups, label completeness, alerts), nothing fetched when opened."""
    from medops.atomic import write_atomic
    from medops.errors import Conflict
    from medops.services import Services

    target = (output or Path(f"monitoring-{model}.html")).expanduser()
    if target.exists() and not overwrite:
        raise Conflict(f"{target} already exists", code="output_exists", path=str(target))
    with open_workspace() as ws:
        html = Services(ws).monitoring.report(
            cli_caller(ws, writes=False), model, since=moment(since, "--since"), until=moment(until, "--until")
        )
    write_atomic(target, html)
    done(as_json, f"wrote {target}", {"path": str(target), "bytes": len(html.encode())})


@app.command("list", epilog="Examples:  medops monitor list   ·   medops monitor list --model readmission_30d")
def list_cmd(
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME", help="Only this model."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Monitored windows, newest first (a window judged again shows its newest result)."""
    found = remote.read_list(
        "/v1/monitoring/windows",
        lambda services, caller: [w.to_json() for w in services.monitoring.windows(caller, model, limit=limit)],
        limit=limit,
        params={"model": model} if model is not None else None,
    )
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no monitored window yet: `medops monitor run MODEL` judges them")
        return
    _windows(found)


@app.command("show", epilog="Examples:  medops monitor show 3f9a1c2e7b10   ·   ... --json")
def show_cmd(
    window_id: str = typer.Argument(..., metavar="ID", help="A window's id (or its first 12 characters)."),
    as_json: bool = JsonOption,
) -> None:
    """One window in full: each feature's statistics with thresholds and p-values, quality, the score."""
    doc: dict[str, Any] = remote.read(
        f"/v1/monitoring/windows/{remote.segment(window_id)}",
        lambda services, caller: services.monitoring.show(caller, window_id)[1],
    )
    if as_json:
        print_json(doc)
        return
    judged = "judged" if doc["judged"] else f"not judged: fewer than {doc['min_rows']:,} rows"
    console.print(f"[bold]{doc['model']}:{doc['version']}[/] · {doc['window']} · {doc['rows']:,} rows · {judged}")
    rows = []
    for name, feature in doc["features"].items():
        rows.append([name, _verdict(feature), _stats(feature["statistics"]), _quality(feature)])
    rows.append(["(score)", _verdict(doc["prediction"]), _stats(doc["prediction"]["statistics"]), _share(doc)])
    table(None, ["feature", "verdict", "effects (threshold) · p-value", "quality"], rows)


def _verdict(feature: dict[str, Any]) -> str:
    return "[red]drifted[/]" if feature.get("drifted") else "stable"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


def _stats(found: list[dict[str, Any]]) -> str:
    parts = []
    for s in found:
        if "threshold" not in s:
            continue
        mark = "*" if s.get("material") and s.get("significant") else ""
        parts.append(f"{s['name']} {_number(s['value'])}{mark} ({s['threshold']:g}) p={_number(s.get('p_value'))}")
    return escape(" · ".join(parts))


def _quality(feature: dict[str, Any]) -> str:
    notes = []
    missing = feature["missing"]
    if missing["flagged"]:
        notes.append(f"missing {missing['reference']:.1%} -> {missing['current']:.1%}")
    if feature.get("out_of_range", {}).get("flagged"):
        notes.append(f"out of range {feature['out_of_range']['share']:.1%}")
    if feature.get("new_category_flagged"):
        notes.append("new categories: " + ", ".join(feature["new_categories"]))
    unit = feature.get("unit_change")
    if unit:
        notes.append(f"suspected unit {unit['suspected_unit']} in {unit['share']:.1%}")
    return escape("; ".join(notes)) or "-"


def _share(doc: dict[str, Any]) -> str:
    above = doc["prediction"]["above_threshold"]
    if above["current"] is None:
        return "-"
    return f"at or above the threshold: {above['reference']:.1%} -> {above['current']:.1%}"
