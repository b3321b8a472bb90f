"""`medops runs`: list, show, compare tracked runs and fetch what they logged."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape

from medops.atomic import write_atomic_bytes
from medops.cli import remote
from medops.cli.common import (
    JsonOption,
    cell,
    cli_caller,
    console,
    done,
    key_values,
    open_workspace,
    print_json,
    table,
)
from medops.cli.common import when as _when
from medops.errors import InvalidInput

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def _recorded(value: Any) -> Any:
    """A parameter as recorded (text, JSON for numbers, lists and mappings), read back to be shown rounded."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _number(value: Any) -> str:  # six digits: where two runs are compared, small differences show
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


TEST_METRICS = ("test_auroc", "test_auprc", "test_brier")


def metric_columns(filtered: list[str], present: set[str]) -> list[str]:
    """The metrics a run list shows: those the filters name, then the test metrics, then others, five at most."""
    first = [k for k in dict.fromkeys([*filtered, *TEST_METRICS]) if k in present]
    rest = sorted(k for k in present - set(first) if not k.startswith(("search_", "pruned", "trials")))
    return (first + rest)[: max(5, len(filtered))]


@app.command(
    "list",
    epilog="Examples:  medops runs list --experiment readmission   ·   "
    "medops runs list --tag model=lgbm --metric 'auroc>=0.8'",
)
def list_cmd(
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    state: str | None = typer.Option(None, "--state", help="running, finished, failed or killed."),
    tag: list[str] = typer.Option([], "--tag", metavar="KEY=VALUE", help="KEY=VALUE; repeat to require several."),
    metric: list[str] = typer.Option([], "--metric", help="METRIC<op>NUMBER (>, >=, <, <=, =, !=); repeatable."),
    trials: bool = typer.Option(False, "--trials", help="Include nested runs (tuning trials)."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Runs, newest first, filtered in the database. Runs whose process died are shown as killed."""
    from medops.training import MetricFilter

    filters = [MetricFilter.parse(m) for m in metric]
    tags = {k: v[-1] for k, v in key_values(tag, "--tag", "model=lgbm").items()}
    query = {"experiment": experiment, "state": state, "tag": tag, "metric": metric, "trials": trials}
    runs = remote.read_list(
        "/v1/runs",
        lambda services, caller: [
            r.to_json()
            for r in services.training.runs(
                caller, experiment=experiment, state=state, tags=tags, metrics=filters, trials=trials, limit=limit
            )
        ],
        limit=limit,
        params={k: v for k, v in query.items() if v not in (None, [], False)},
    )
    if as_json:
        print_json(runs)
        return
    keys = metric_columns([f.key for f in filters], {k for r in runs for k in r["metrics"]})
    table(
        None,
        ["run", "experiment", "name", "state", "started (UTC)", "by", *keys],
        [
            [r["id"][:12], r["experiment"], r["name"], r["state"], _when(r["started_at"]), r["by"]]
            + [cell(r["metrics"].get(k)) for k in keys]
            for r in runs
        ],
    )


@app.command("show", epilog="Examples:  medops runs show 3f2a9c")
def show_cmd(
    run: str = typer.Argument(..., help="Run id (or a unique prefix of 6+ characters)."), as_json: bool = JsonOption
) -> None:
    """Everything recorded about a run: state, parameters, metrics, inputs, artifacts, code and environment."""
    info = remote.read(
        f"/v1/runs/{remote.segment(run)}", lambda services, caller: services.training.show(caller, run).to_json()
    )
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{escape(info['name'])}[/]  run {info['id']}  experiment {escape(info['experiment'])}")
    console.print(
        f"  state {info['state']}  by {info['created_by']} on {escape(info['host'])}"
        f"  started {_when(info['started_at'])}  ended {_when(info['ended_at']) or '-'}"
    )
    if info["error"]:
        console.print(f"  [red]error[/] {escape(info['error'])}")
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[info["git_dirty"]]
    console.print(
        f"  code {info['git_commit'] or 'not in git'}{dirty}  project file {(info['project_sha256'] or '-')[:12]}  "
        f"environment {(info['env_digest'] or '-')[:12]}  seed {info['seed'] if info['seed'] is not None else '-'}"
    )
    if info["parent_id"]:
        console.print(f"  trial of run {info['parent_id'][:12]}")
    table("parameters", ["name", "value"], [[k, cell(_recorded(v))] for k, v in sorted(info["params"].items())])
    table("metrics (latest)", ["name", "value"], [[k, cell(v)] for k, v in sorted(info["metrics"].items())])
    if info["tags"]:
        table("tags", ["name", "value"], sorted(info["tags"].items()))
    if info["inputs"]:
        table(
            "inputs", ["kind", "name", "version"], [[i["kind"], i["name"], i["version"][:12]] for i in info["inputs"]]
        )
    if info["artifacts"]:
        table(
            "artifacts",
            ["path", "sha256", "bytes"],
            [[a["path"], a["digest"][:12], a["size"]] for a in info["artifacts"]],
        )


@app.command("artifact", epilog="Examples:  medops runs artifact 3f2a9c model/booster.txt --out booster.txt")
def artifact_cmd(
    run: str = typer.Argument(..., help="Run id (or a unique prefix of 6+ characters)."),
    path: str = typer.Argument(..., help="The artifact's path, as `medops runs show` lists it."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The file to write (default: its own name, here)."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
    as_json: bool = JsonOption,
) -> None:
    """Write a file a run logged, after checking it against the SHA-256 recorded with it."""
    target = (out or Path(PurePosixPath(path).name)).expanduser()
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists", hint="give another --out, or --force to replace it")
    digest, data = remote.download(
        f"/v1/runs/{remote.segment(run)}/artifacts/{quote(path)}",
        lambda services, caller: _sha_and_bytes(services.training.artifact(caller, run, path)),
    )
    write_atomic_bytes(target, data)
    message = f"wrote {target} ({len(data):,} bytes, sha256:{digest[:12]})"
    done(as_json, message, {"path": path, "sha256": digest, "bytes": len(data), "file": str(target)})


def _sha_and_bytes(found: Any) -> tuple[str, bytes]:
    return found.sha256, found.data


@app.command("compare", epilog="Examples:  medops runs compare 3f2a9c 8b01de")
def compare_cmd(
    a: str = typer.Argument(..., help="First run."),
    b: str = typer.Argument(..., help="Second run."),
    as_json: bool = JsonOption,
) -> None:
    """Parameters that differ, every metric side by side, inputs, code and environment differences."""
    diff = remote.read(
        f"/v1/runs/{remote.segment(a)}/compare/{remote.segment(b)}",
        lambda services, caller: services.training.compare(caller, a, b).to_json(),
    )
    if as_json:
        print_json(diff)
        return
    left, right = diff["a"][:12], diff["b"][:12]
    table("parameters that differ", ["parameter", left, right], diff["params"] or [["(none)", "", ""]])
    rows = []
    for key, x, y in diff["metrics"]:
        change = f"{y - x:+.6g}" if x is not None and y is not None else ""
        rows.append([key, _number(x), _number(y), change])
    table("metrics", ["metric", left, right, "change"], rows)
    if any(x != y for _, x, y in diff["inputs"]):
        table("inputs", ["input", left, right], [[k, (x or "-")[:12], (y or "-")[:12]] for k, x, y in diff["inputs"]])
    if diff["code"]:
        table("code", ["", left, right], [[k, x, y] for k, x, y in diff["code"]])
    if diff["environment"]:
        table("environment", ["change"], [[line] for line in diff["environment"]])


@app.command("reproduce", epilog="Examples:  medops runs reproduce 3f2a9c")
def reproduce_cmd(
    run: str = typer.Argument(..., help="The run to train again (made by medops train)."),
    as_json: bool = JsonOption,
) -> None:
    """Train again from the run's recorded data version, settings and seed; say whether the model matches.

    Exits with status 1 when the model or its test metrics differ, naming the likely
    causes (data, settings, code, environment).
    """
    from medops.services import Services

    with open_workspace() as ws:
        found = Services(ws).training.reproduce(cli_caller(ws, writes=True), run)
    report = found.report
    if as_json:
        print_json(found.to_json())
    elif report.reproduced:
        console.print(
            f"[green]✓[/] reproduced: run {report.result.run_id[:12]} gives the same model "
            f"(sha256:{report.result.model_sha256[:12]}) and the same test metrics"
        )
    else:
        what = "a different model file" if not report.same_model else "the same model but different metrics"
        console.print(f"[red]✗[/] not reproduced: run {report.result.run_id[:12]} gives {what}")
        for key, before, after in report.metric_changes:
            console.print(f"    {escape(key)}: {_number(before)} -> {_number(after)}")
        for cause in report.causes or ["no difference in data, settings, code or environment was recorded"]:
            console.print(f"    {escape(cause)}")
    if not report.reproduced:
        raise typer.Exit(1)
