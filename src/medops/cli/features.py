"""`medops features`: apply feature views, build training sets, materialize, serve and check them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from medops.backends import EXECUTORS
from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cli_caller,
    console,
    key_values,
    ok,
    open_workspace,
    plural,
    print_json,
    progress_bar,
    table,
    when,
)
from medops.cli.data import ProjectOption, project_at
from medops.errors import InvalidInput

if TYPE_CHECKING:  # the feature store (DuckDB, pandas) loads when a command needs it, not for --help
    from medops.features import FeatureView
    from medops.features.store import AppliedView

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

ExecutorOption = typer.Option(
    None, "--executor", help=f"{EXECUTORS.choices()} (default: the workspace's executor setting)."
)


def _progress(enabled: bool) -> Progress:
    return progress_bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), enabled=enabled)


@app.command("apply", epilog="Examples:  medops features apply   ·   medops features apply labs -r 'add creatinine'")
def apply_cmd(
    views: list[str] = typer.Argument(None, help="View names (default: every view of the project)."),
    project: Path | None = ProjectOption,
    executor: str | None = ExecutorOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Build each view's offline table from its source dataset's newest version and record it.

    A view's version is the hash of its definition and its source version: applying an
    unchanged view records nothing. All views are checked before any is built, and all are
    recorded in one transaction, so a bad view leaves nothing applied.
    """
    loaded = project_at(project)
    from medops.services import Services

    with open_workspace() as ws, _progress(not as_json) as bar:
        task = bar.add_task("apply", total=None)
        applied = Services(ws).features.apply(
            cli_caller(ws, writes=True),
            loaded.features,
            views=views or None,
            executor=executor,
            reason=reason,
            progress=lambda name: bar.update(task, description=f"building {name}"),
        )
    if as_json:
        print_json(applied.to_json())
        return
    results = applied.results
    for r in results:
        state = "new version" if r.new else "unchanged"
        stats = r.view.stats
        ok(
            f"{r.view.ref}  {plural(r.view.rows, 'row')}, {plural(stats.get('entities', 0), 'entity')}  "
            f"from {r.view.definition['source_ref']}  ({state})"
        )


@app.command("list", epilog="Examples:  medops features list   ·   medops features list --json")
def list_cmd(project: Path | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Applied views (newest version of each) and views declared in the project but not applied."""
    from medops.features import list_applied

    with open_workspace() as ws:
        cli_caller(ws, writes=False)  # a read: it needs a login only where the workspace says so
        applied = list_applied(ws)
    newest: dict[str, AppliedView] = {}
    for version in applied:
        newest.setdefault(version.name, version)
    from medops.services.projects.project import ProjectError, find_project

    declared: dict[str, FeatureView] = {}
    try:
        found = project or find_project()
    except ProjectError:  # no project file here: the applied views alone
        found = None
    try:
        declared = dict(project_at(found).features.views) if found else {}
    except InvalidInput:
        if project is not None:
            raise
    rows = []
    for name in sorted(set(newest) | set(declared)):
        a: AppliedView | None = newest.get(name)
        d: FeatureView | None = declared.get(name)
        features = len(a.definition["features"]) if a else len(d.features) if d else 0
        rows.append(
            {
                "view": name,
                "version": a.version[:12] if a else None,
                "features": features,
                "rows": a.rows if a else None,
                "source": a.definition.get("source_ref") if a else d.source if d else None,
                "owner": (a.definition.get("owner") if a else d.owner if d else None),
                "applied": a.created_at.strftime("%Y-%m-%d %H:%M") if a else "not applied",
                "by": a.created_by if a else None,
            }
        )
    if as_json:
        print_json(rows)
        return
    table(
        None,
        ["view", "version", "features", "rows", "source", "owner", "applied (UTC)", "by"],
        [list(r.values()) for r in rows],
    )


@app.command("show", epilog="Examples:  medops features show labs")
def show_cmd(view: str = typer.Argument(..., help="View name."), as_json: bool = JsonOption) -> None:
    """A view's definition, statistics, versions, lineage and who changed what."""
    detail = remote.read(
        f"/v1/features/{remote.segment(view)}", lambda services, caller: services.features.show(caller, view).to_json()
    )
    if as_json:
        print_json(detail)
        return
    d, source = detail["definition"], detail["definition"].get("source_ref")
    console.print(f"[bold]{escape(detail['view'])}[/]  version {detail['version'][:12]}  source {escape(str(source))}")
    if d.get("description"):
        console.print(f"  {escape(d['description'])}")
    console.print(
        f"  entity {d['entity']}  timestamp {d.get('timestamp') or '(static)'}  created {d.get('created') or '-'}  "
        f"ttl {_days(d.get('ttl_seconds'))}  owner {d.get('owner') or '-'}  "
        f"tags {', '.join(d.get('tags') or []) or '-'}"
    )
    s = detail["stats"]
    console.print(
        f"  {plural(s.get('rows', 0), 'row')}, {plural(s.get('entities', 0), 'entity')}, "
        f"events {s.get('first_event') or '-'} to {s.get('last_event') or '-'}"
    )
    missing = s.get("missing_share", {})
    rows = []
    for f in d["features"]:
        kind = f["agg"] or "latest"
        window = _days(f.get("window_seconds")) if f.get("window_seconds") else ""
        share = missing.get(f["name"])
        rows.append(
            [
                f["name"],
                kind,
                window,
                f.get("expr") or ("python" if f.get("python") else f["name"]),
                f.get("filter") or "",
                f"{share:.1%}" if share is not None else "",
            ]
        )
    table("features", ["feature", "kind", "window", "value", "filter", "missing (rows)"], rows)
    table(
        "versions",
        ["version", "applied (UTC)", "by"],
        [[v["version"][:12], when(v["at"], seconds=False), v["by"]] for v in detail["versions"]],
    )
    table("lineage", ["from", "relation", "to"], [[e["src"], e["relation"], e["dst"]] for e in detail["lineage"]])
    table(
        "history",
        ["time (UTC)", "actor", "action", "reason"],
        [[when(e["at"]), e["actor"], e["action"], e["reason"] or ""] for e in detail["history"]],
    )


def _days(seconds: Any) -> str:
    if not seconds:
        return "-"
    days = int(seconds) / 86400
    return f"{days:g}d" if days >= 1 else f"{int(seconds)}s"


@app.command("materialize", epilog="Examples:  medops features materialize   ·   medops features materialize labs")
def materialize_cmd(
    views: list[str] = typer.Argument(None, help="View names (default: every view of the project)."),
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="TIME", help="ISO time the values are computed at (default: now)."
    ),
    project: Path | None = ProjectOption,
    executor: str | None = ExecutorOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Write each view's latest values per entity to the online store (SQLite, or Redis when configured).

    Values are computed with the same point-in-time join as training sets, at --as-of.
    Each view's online table is replaced atomically.
    """
    moment = _parse_time(as_of, "--as-of") if as_of else None
    loaded = project_at(project)
    from medops.services import Services

    with open_workspace() as ws, _progress(not as_json) as bar:
        task = bar.add_task("materialize", total=None)
        written = Services(ws).features.materialize(
            cli_caller(ws, writes=True),
            loaded.features,
            views=views or None,
            as_of=moment,
            executor=executor,
            reason=reason,
            progress=lambda view, rows: bar.update(task, description=f"{view}: {plural(rows, 'entity')}"),
        )
    if as_json:
        print_json(written)
        return
    for view, rows in written.items():
        ok(f"{view}: {plural(rows, 'entity')} written to the online store")


def _parse_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not an ISO time", hint="for example 2026-01-31T12:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command(
    "get",
    epilog="Examples:  medops features get labs admissions:admissions_180d --entity patient_id=pat_1a2b3c",
)
def get_cmd(
    features: list[str] = typer.Argument(..., help="view, view:feature or an on-demand feature."),
    entity: list[str] = typer.Option(
        ..., "--entity", "-e", metavar="ENTITY=ID", help="ENTITY=ID; repeat for several ids."
    ),
    request: list[str] = typer.Option(
        [], "--request", metavar="FIELD=VALUE", help="FIELD=VALUE of the request payload, for on-demand features."
    ),
    project: Path | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Online lookup: the latest materialized values, their event time, and which went stale (older than TTL)."""
    loaded = project_at(project)
    from medops.services import Services

    with open_workspace() as ws:
        found = Services(ws).features.online_features(
            cli_caller(ws, writes=False),
            loaded.features,
            key_values(entity, "--entity", "patient_id=pat_1a2b"),
            features,
            request=key_values(request, "--request", "event_timestamp=2026-01-31T12:00:00Z") or None,
        )
    if as_json:
        print_json(found.to_json())
        return
    result = found.result
    records = result.rows
    for i, row in enumerate(records):
        rows = []
        for name, value in row.items():
            flag = "stale (older than TTL)" if result.stale.get(name, [False] * len(records))[i] else ""
            rows.append([name, value, flag])
        table(None, ["feature", "value", ""], rows)
        for view, times in result.event_times.items():
            state = "" if result.found[view][i] else "  (no row for this entity)"
            moment = times[i]
            console.print(f"  {escape(view)}: event time {moment.isoformat() if moment else '-'}{state}")


@app.command("check", epilog="Examples:  medops features check   ·   medops features check --sample 500")
def check_cmd(
    views: list[str] = typer.Argument(None, help="View names (default: all)."),
    sample: int = typer.Option(100, "--sample", min=1, help="Entities per view to recompute."),
    seed: int = typer.Option(0, "--seed", help="Which entities are sampled."),
    project: Path | None = ProjectOption,
    as_json: bool = JsonOption,
) -> None:
    """Train/serve consistency: recompute sampled entities offline and compare with the online store.

    On-demand features are computed for a sample in one batch (training) and one row at a
    time (serving) and compared too. Exits with status 1 on any difference.
    """
    loaded = project_at(project)
    from medops.services import Services

    with open_workspace() as ws:
        checked = Services(ws).features.check(
            cli_caller(ws, writes=False), loaded.features, views=views or None, sample=sample, seed=seed
        )
    report = checked.report
    if as_json:
        print_json(checked.to_json())
    else:
        for view, count in report.checked.items():
            console.print(f"  {escape(view)}: {plural(count, 'entity')} sampled, compared")
        for view in report.not_materialized:
            console.print(f"  [yellow]{escape(view)}: not materialized, not compared[/]")
        for d in report.differences[:20]:
            console.print(
                f"  [red]{escape(d.view)} {escape(d.entity)} {escape(d.feature)}: "
                f"offline {escape(repr(d.offline))}, online {escape(repr(d.online))}[/]"
            )
        if report.ok:
            ok("online and offline agree; on-demand features agree batch and row by row")
        else:
            console.print(f"[red]✗[/] {plural(len(report.differences), 'difference')}")
    if not report.ok:
        raise typer.Exit(1)


@app.command(
    "training-set",
    epilog="Examples:  medops features training-set readmission_training --labels readmission_labels "
    "--timestamp label_time admissions labs age_years",
)
def training_set_cmd(
    name: str = typer.Argument(..., help="Name of the dataset to store the training set as."),
    features: list[str] = typer.Argument(..., help="view, view:feature or an on-demand feature."),
    labels: str = typer.Option(..., "--labels", metavar="DATASET", help="Labels dataset: NAME or NAME@VERSION."),
    timestamp: str = typer.Option(
        ..., "--timestamp", metavar="COLUMN", help="Labels column with each row's prediction time."
    ),
    no_backfill_guard: bool = typer.Option(
        False, "--no-backfill-guard", help="Also use rows created after the label time (recorded; leaks backfills)."
    ),
    project: Path | None = ProjectOption,
    executor: str | None = ExecutorOption,
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Point-in-time correct features for every label row, stored as a dataset version with lineage."""
    loaded = project_at(project)
    from medops.services import Services

    with open_workspace() as ws, _progress(not as_json) as bar:
        bar.add_task(f"training set {name}", total=None)
        made = Services(ws).features.training_set(
            cli_caller(ws, writes=True),
            loaded.features,
            name,
            labels,
            features,
            timestamp=timestamp,
            executor=executor,
            reason=reason,
            backfill_guard=not no_backfill_guard,
        )
    if as_json:
        print_json(made.to_json())
        return
    info, new = made.info, made.new
    state = "new version" if new else "unchanged"
    ok(f"{info.ref}  {plural(info.rows, 'row')} × {plural(info.column_count, 'column')}  ({state})")
