"""`medops alerts list|show|ack|resolve`: the alerts monitoring opened, and who answered them."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, ReasonOption, cli_caller, console, done, open_workspace, print_json, table

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


@app.command(
    "list", epilog="Examples:  medops alerts list   ·   medops alerts list --state open --model readmission_30d"
)
def list_cmd(
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME", help="Only this model."),
    state: str | None = typer.Option(None, "--state", metavar="STATE", help="open, acknowledged or resolved."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = JsonOption,
) -> None:
    """Alerts, newest first: which rule fired on which model version, and where each one stands."""
    from medops.services import Services

    with open_workspace() as ws:
        found = Services(ws).monitoring.alerts(cli_caller(ws, writes=False), model=model, state=state, limit=limit)
    if as_json:
        print_json([a.to_json() for a in found])
        return
    if not found:
        console.print("no alert" + (f" {state}" if state else "") + (f" of {escape(model)}" if model else ""))
        return
    table(
        None,
        ["alert", "opened (UTC)", "model", "rule", "severity", "state", "condition"],
        [
            [
                a.id[:12],
                a.opened_at.strftime("%Y-%m-%d %H:%M"),
                f"{a.model}:{a.version}",
                a.rule,
                a.severity,
                a.state,
                a.condition,
            ]
            for a in found
        ],  # fmt: skip
    )


@app.command("show", epilog="Examples:  medops alerts show 3f9a1c2e7b10   ·   ... --json")
def show_cmd(
    alert_id: str = typer.Argument(..., metavar="ID", help="The alert's id (or its first 12 characters)."),
    as_json: bool = JsonOption,
) -> None:
    """One alert: the metrics that crossed in each window, its deliveries, who acknowledged and resolved it."""
    from medops.services import Services

    with open_workspace() as ws:
        alert = Services(ws).monitoring.alert(cli_caller(ws, writes=False), alert_id)
    if as_json:
        print_json(alert.to_json())
        return
    console.print(f"[bold]{alert.id}[/] · {alert.severity} · {escape(alert.rule)} on {alert.model}:{alert.version}")
    console.print(f"condition: {escape(alert.condition)} · state: {alert.state}")
    for breach in alert.breaches:
        values = ", ".join(f"{k} = {v:.4g}" for k, v in breach["metrics"].items())
        console.print(f"  window {breach['label']}: {escape(values)}")
    for move in ("acknowledged", "resolved"):
        said: Any = getattr(alert, move)
        if said:
            console.print(f"{move} by {said['by']} at {said['at']}: {escape(said['reason'])}")
    for d in alert.deliveries:
        outcome = "delivered" if d["delivered"] else "failed"
        console.print(f"  {d['channel']}: {outcome} after {d['attempts']} attempt(s) ({escape(d['detail'])})")


@app.command("ack", epilog="Examples:  medops alerts ack 3f9a1c2e7b10 -r 'checking the south site thermometers'")
def ack_cmd(
    alert_id: str = typer.Argument(..., metavar="ID", help="The alert's id (or its first 12 characters)."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Acknowledge an open alert: someone is on it (your name, time and reason are audited)."""
    from medops.services import Services

    with open_workspace() as ws:
        alert = Services(ws).monitoring.acknowledge(cli_caller(ws, writes=True), alert_id, reason or "")
    done(as_json, f"alert {alert.id[:12]} acknowledged", alert.to_json())


@app.command(
    "resolve", epilog="Examples:  medops alerts resolve 3f9a1c2e7b10 -r 'site south converts to C again (INC-231)'"
)
def resolve_cmd(
    alert_id: str = typer.Argument(..., metavar="ID", help="The alert's id (or its first 12 characters)."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Resolve an alert: dealt with. The rule fires again only on a later window."""
    from medops.services import Services

    with open_workspace() as ws:
        alert = Services(ws).monitoring.resolve(cli_caller(ws, writes=True), alert_id, reason or "")
    done(as_json, f"alert {alert.id[:12]} resolved", alert.to_json())
