"""`medops data`: ingest the project's sources, list, show and compare dataset versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cli_caller,
    console,
    done,
    local_only,
    ok,
    open_workspace,
    plural,
    print_json,
    progress_bar,
    table,
    when,
)
from medops.errors import InvalidInput

if TYPE_CHECKING:  # the data stack loads when a command needs it, not for --help
    from medops.data.ingest import IngestResult
    from medops.services.projects.project import LoadedProject

DEFAULT_CHUNK_ROWS = 100_000  # medops.data.sources.DEFAULT_CHUNK_ROWS (a test holds them equal)

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)

ProjectOption = typer.Option(None, "--project", "-p", help="Project file (default: medops.yaml here or above).")


def project_at(path: Path | None) -> LoadedProject:
    """The project file a command works from: such a command runs where the workspace is."""
    from medops.services.projects.project import find_project, load_project

    local_only()
    return load_project(path.expanduser() if path else find_project())


@app.command(
    "ingest",
    epilog="Examples:  medops data ingest --all   ·   medops data ingest encounters -r 'monthly feed'",
)
def ingest_cmd(
    tables: list[str] = typer.Argument(None, help="Source names from the project file."),
    all_tables: bool = typer.Option(False, "--all", help="Ingest every source of the project."),
    project: Path | None = ProjectOption,
    chunk_rows: int = typer.Option(DEFAULT_CHUNK_ROWS, "--chunk-rows", min=100, help="Rows held in memory at once."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Read sources through their contract and de-identification into dataset versions.

    A version is the SHA-256 of the de-identified Parquet file: ingesting the same data again
    gives the same version and stores nothing new. Rows that break a quarantine contract are
    kept, de-identified, as the dataset NAME.quarantine. Raw identified data is never stored.
    """
    loaded = project_at(project)
    names = list(loaded.spec.sources) if all_tables else list(tables or [])
    if not names:
        raise InvalidInput(
            "name the sources to ingest, or give --all", hint=f"sources: {', '.join(loaded.spec.sources)}"
        )
    from medops.services import Services
    from medops.services.projects.ingest import table_plan

    plans = [table_plan(loaded, name) for name in names]
    results: list[IngestResult] = []
    with open_workspace() as ws:
        data, caller = Services(ws).data, cli_caller(ws, writes=True)
        for plan in plans:
            with progress_bar(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,} rows"),
                TimeElapsedColumn(),
                enabled=not as_json,
            ) as bar:
                task = bar.add_task(f"ingest {plan.name}", total=None)
                result = data.ingest(
                    caller,
                    plan,
                    reason=reason,
                    chunk_rows=chunk_rows,
                    progress=lambda rows, task=task: bar.update(task, completed=rows),  # type: ignore[misc]
                )
            results.append(result)
            if not as_json:
                _print_result(result)
    if as_json:
        print_json([r.to_json() for r in results])


def _print_result(result: IngestResult) -> None:
    d = result.dataset
    state = "new version" if result.new else "unchanged: this version exists already, nothing stored"
    ok(
        f"{d.ref}  {plural(d.rows, 'row')} × {plural(d.column_count, 'column')}  "
        f"contract: {d.contract_result}  ({state})"
    )
    if result.quarantine:
        console.print(f"    quarantined  {plural(result.quarantine.rows, 'row')} as {escape(result.quarantine.ref)}")
    contract = d.details.get("contract")
    if contract:
        _print_contract(contract, limit=3)
    for warning in (d.details.get("deid") or {}).get("warnings", []):
        console.print(f"    [yellow]warning[/]      {escape(warning)}")


def _sample_line(sample: dict[str, Any]) -> str:
    """Row number, the failing column's value, the row's key (whole), then the rest of the row."""
    head = [f"row {sample.get('_row')}"]
    if "_column" in sample:
        value = sample["_value"]
        head.append(f"{sample['_column']} = {'(missing)' if value is None else repr(value)}")
    key = sample.get("_key") or {}
    head += [f"{k}={v}" for k, v in key.items()]
    shown = {"_row", "_column", "_value", "_key", *key}
    rest = ", ".join(f"{k}={v}" for k, v in sample.items() if k not in shown and v is not None)
    return "; ".join(head) + (f"  [{rest[:200]}{'…' if len(rest) > 200 else ''}]" if rest else "")


def _print_contract(contract: dict[str, Any], limit: int = 5) -> None:
    for rule, count in contract.get("normalized", {}).items():
        console.print(f"    normalized   {plural(count, 'row')}: {escape(rule)}")
    for rule in contract.get("rules", []):
        console.print(f"    [yellow]rule[/]         {escape(rule['rule'])}: {plural(rule['failures'], 'row')}")
        for sample in rule.get("samples", [])[:limit]:
            console.print(f"                 {escape(_sample_line(sample))}")
    if contract.get("stale"):
        console.print(f"    [yellow]stale[/]        {escape(contract['stale'])}")


@app.command("list", epilog="Examples:  medops data list   ·   medops data list encounters")
def list_cmd(
    name: str | None = typer.Argument(None, help="Only the versions of this dataset."),
    limit: int = typer.Option(50, "--limit", min=1),
    as_json: bool = JsonOption,
) -> None:
    """Dataset versions, newest first; * marks each dataset's current version (what NAME alone means)."""
    found = remote.read_list(
        "/v1/datasets",
        lambda services, caller: [v.to_json() for v in services.data.versions(caller, name, limit)],
        limit=limit,
        params={"name": name},
    )
    if as_json:
        print_json(found)
        return
    table(
        None,
        ["dataset", "version", "rows", "cols", "contract", "created (UTC)", "by"],
        [
            (
                v["name"],
                f"{v['version'][:12]}{' *' if v['current'] else ''}",
                f"{v['rows']:,}",
                v["columns"],
                v["contract"],
                when(v["created_at"], seconds=False),
                v["created_by"],
            )
            for v in found
        ],
    )


@app.command("show", epilog="Examples:  medops data show encounters   ·   medops data show encounters@3f2a9c --json")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME (newest version) or NAME@VERSION (6+ hex characters)."),
    as_json: bool = JsonOption,
) -> None:
    """Schema, column profile, sources, contract report and de-identification report."""
    d = remote.read(
        f"/v1/datasets/{remote.segment(ref)}", lambda services, caller: services.data.show(caller, ref).to_json()
    )
    if as_json:
        print_json(d)
        return
    console.print(f"[bold]{escape(d['name'])}[/] @ {d['version']}")
    console.print(
        f"  {plural(d['rows'], 'row')} × {plural(d['columns'], 'column')}, {plural(d['size_bytes'], 'byte')}; "
        f"created {when(d['created_at'], seconds=False)} UTC by {escape(d['created_by'])}"
    )
    for src in d.get("sources", []):
        role = f" ({src['role']})" if src.get("role") else ""
        console.print(f"  source {src['kind']}  {escape(src['name'])}  sha256:{src['sha256'][:16]}…{escape(role)}")
    if d.get("quarantine_of"):
        console.print(f"  quarantined rows of {escape(d['quarantine_of'])}")
    profile: dict[str, dict[str, Any]] = d.get("profile", {})
    rows = []
    for col in d.get("schema", []):
        p = profile.get(col["name"], {})
        distinct = p.get("distinct")
        shown = f"{distinct:,}" if p.get("distinct_exact") or distinct is None else f"~{distinct:,}"
        rows.append((col["name"], col["type"], f"{p.get('missing_share', 0):.1%}", shown, _stats(p)))
    table("schema and profile", ["column", "type", "missing", "distinct", "summary"], rows)
    if any(not (c.get("distinct_exact") or c.get("distinct") is None) for c in profile.values()):
        console.print("  ~ distinct: a HyperLogLog estimate, within a few percent; patients are counted exactly")
    contract = d.get("contract")  # the report, where the version has one (it replaces the summary's result)
    if isinstance(contract, dict):
        verdict = "passed" if contract["passed"] else f"{contract['rows_failed']:,} of {contract['rows']:,} rows failed"
        file = d.get("contract_file") or contract["table"]
        console.print(
            f"[bold]contract[/] {escape(str(file))} v{contract['version']} ({contract['outcome']}): {verdict}"
        )
        _print_contract(contract)
    deid = d.get("deid")
    if deid:
        table(
            "de-identification (HIPAA Safe Harbor)",
            ["column", "action", "values changed", "note"],
            [(c["column"], c["action"], f"{c['changed']:,}", c["note"]) for c in deid["columns"]],
        )
        redactions = {k: v for k, v in deid.get("text_redactions", {}).items() if v}
        if redactions:
            console.print("  text redactions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(redactions.items())))
        if deid.get("text_engine"):
            console.print(f"  text scanned by: {escape(deid['text_engine'])}")
        if deid.get("k_anonymity") is not None:
            over = ", ".join(deid.get("quasi_identifiers") or ["age band", "sex", "ZIP3"])
            console.print(
                f"  k-anonymity over ({escape(over)}): k = {deid['k_anonymity']}; "
                f"{deid['share_below_k5']:.1%} of {deid.get('k_counts', 'rows')} in groups smaller than 5"
            )
        if deid.get("key_id"):
            console.print(f"  pseudonym key id: {deid['key_id']}")
        for warning in deid.get("warnings", []):
            console.print(f"  [yellow]warning[/] {escape(warning)}")


def _stats(p: dict[str, Any]) -> str:
    if p.get("kind") == "number" and p.get("mean") is not None:
        q = p.get("quantiles", {})
        return f"min {p['min']:.4g}  p50 {q.get('p50', float('nan')):.4g}  mean {p['mean']:.4g}  max {p['max']:.4g}"
    if p.get("kind") == "time" and p.get("min"):
        return f"{str(p['min'])[:10]} … {str(p['max'])[:10]}"
    if p.get("top"):
        return ", ".join(f"{v} ({n:,})" for v, n in p["top"][:3])[:80]
    if p.get("max_length") is not None:
        return f"length {p['min_length']}–{p['max_length']}"
    return ""


@app.command("use", epilog="Example:  medops data use encounters@3f2a9c -r 'the 12 May extract was truncated'")
def use_cmd(
    ref: str = typer.Argument(..., help="NAME@VERSION: the version to make current."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Make an earlier version a dataset's current one (what NAME alone means from now on); audited.

    Ingesting content identical to an earlier version makes that version current too.
    """
    info = remote.change(
        "POST",
        f"/v1/datasets/{remote.segment(ref)}/use",
        lambda services, caller: services.data.use(caller, ref, reason=reason).to_json(),
        body={"reason": reason},
    )
    ingested = when(info["created_at"], seconds=False)
    message = f"{info['name']} now means {info['name']}@{info['version'][:12]}"
    done(as_json, f"{message} ({plural(info['rows'], 'row')}, ingested {ingested})", info)


@app.command("diff", epilog="Example:  medops data diff observations@3f2a9c observations")
def diff_cmd(
    a: str = typer.Argument(..., help="The earlier dataset version."),
    b: str = typer.Argument(..., help="The later dataset version."),
    as_json: bool = JsonOption,
) -> None:
    """Schema and statistics that differ between two dataset versions."""
    found = remote.read(
        f"/v1/datasets/{remote.segment(a)}/diff/{remote.segment(b)}",
        lambda services, caller: services.data.diff(caller, a, b).to_json(),
    )
    if as_json:
        print_json(found)
        return
    console.print(f"{escape(found['a'])} → {escape(found['b'])}")
    if found["identical"]:
        ok("the same version: identical content")
        return
    if not found["changes"]:
        ok("same schema and statistics")
        return
    table(None, ["column", "what", "before", "after"], found["changes"])
