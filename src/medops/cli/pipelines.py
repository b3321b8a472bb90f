"""`medops pipelines`: the history of pipeline runs, and one run's steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import JsonOption, console, print_json, table, when

app = typer.Typer()  # its help line is set where it is registered (cli/main.py)


@app.command("list", epilog="Examples:  medops pipelines list   ·   medops pipelines list --project readmission_30d")
def list_cmd(
    project: str | None = typer.Option(None, "--project", metavar="NAME", help="Only this project's runs."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Pipeline runs, newest first: who started them, why, how they ended, what ran and what was unchanged."""
    found = _runs(project, limit)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no pipeline run yet: medops run")
        return
    table(
        None,
        ["run", "started (UTC)", "project", "by", "trigger", "state", "ran", "unchanged"],
        [
            [
                r["id"][:12],
                when(r["started_at"]),
                r["project"],
                r["created_by"],
                r["trigger"],
                r["state"],
                sum(s["state"] == "done" for s in r["steps"]),
                sum(s["state"] == "skipped" for s in r["steps"]),
            ]
            for r in found
        ],
    )


def _runs(project: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest pipeline runs (of one project), each with its steps."""
    return remote.read_list(
        "/v1/pipelines/runs",
        lambda services, caller: [r.to_json() for r in services.pipelines.runs(caller, project, limit)],
        limit=limit,
        params={"project": project},
    )


@app.command("show", epilog="Examples:  medops pipelines show   ·   medops pipelines show 3f9a1c2e7b10 --json")
def show_cmd(
    run_id: str | None = typer.Argument(
        None, metavar="RUN", help="The pipeline run's id (or its first 12 characters); default: the newest run."
    ),
    as_json: bool = JsonOption,
) -> None:
    """One pipeline run: each step, why it ran or was skipped, how long it took, and what it made (lineage)."""
    if run_id is None:
        newest = _runs(None, 1)
        if not newest:
            console.print("no pipeline run yet: medops run")
            return
        record = newest[0]
    else:
        record = remote.read(
            f"/v1/pipelines/runs/{remote.segment(run_id)}",
            lambda services, caller: services.pipelines.show(caller, run_id).to_json(),
        )
    if as_json:
        print_json(record)
        return
    ended = f", ended {when(record['ended_at'])}" if record["ended_at"] else ""
    console.print(f"[bold]{record['id']}[/] · {escape(record['project'])} · {record['state']}")
    console.print(
        f"started {when(record['started_at'])} UTC by {escape(record['created_by'])} ({escape(record['trigger'])})"
        f"{ended}; project file sha256:{record['project_sha256'][:12]}"
    )
    if record["resumes"]:
        console.print(f"resumes run {record['resumes'][:12]}")
    if record["error"]:
        console.print(f"[red]{escape(record['error'])}[/]")
    for s in record["steps"]:
        seconds = f"{_seconds(s['started_at'], s['ended_at']):.1f} s" if s["ended_at"] else "-"
        made = made_line(s["outputs"] or {})
        console.print(f"  {s['state']:<11} {escape(s['step']):<26} {seconds:>8}  {escape(s['note'])}")
        if made and s["state"] == "done":
            console.print(f"              [dim]{escape(made)}[/]")
        if s["error"]:
            console.print(f"              [red]{escape(s['error'])}[/]")
    console.print(f"[dim]lineage: medops lineage show pipeline:{record['id']}[/]")


def _seconds(started: str, ended: str) -> float:
    """A step's duration from its document's times (its rounded ``seconds`` could print differently)."""
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


def made_line(outputs: dict[str, Any]) -> str:
    """What a step made, in a line: references shortened, the rest left out (``--json`` has it all)."""
    parts = []
    if "dataset" in outputs:
        parts.append(f"{outputs['dataset']}@{str(outputs['version'])[:12]} ({outputs.get('rows', 0):,} rows)")
    if "views" in outputs:
        parts.append(", ".join(f"{n}@{str(v)[:12]}" for n, v in outputs["views"].items()))
    if "run" in outputs and "evaluation" not in outputs:
        parts.append(f"run {str(outputs['run'])[:12]}")
    if "evaluation" in outputs:
        parts.append(
            f"evaluation {str(outputs['evaluation'])[:12]} ({'passed' if outputs.get('passed') else 'failed'})"
        )
    if "model" in outputs:
        parts.append(f"{outputs['model']}:{outputs['version']}")
    return "; ".join(parts)
