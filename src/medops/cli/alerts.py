"""`medops alerts list|show|ack|resolve`: the alerts monitoring opened, and who answered them."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from medops.cli import remote
from medops.cli.common import JsonOption, ReasonOption, console, done, print_json, table, when

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
    found = remote.read_list(
        "/v1/alerts",
        lambda services, caller: [
            a.to_json() for a in services.monitoring.alerts(caller, model=model, state=state, limit=limit)
        ],
        limit=limit,
        params={k: v for k, v in {"model": model, "state": state}.items() if v is not None},
    )
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no alert" + (f" {state}" if state else "") + (f" of {escape(model)}" if model else ""))
        return
    table(
        None,
        ["alert", "opened (UTC)", "model", "rule", "severity", "state", "condition"],
        [
            [
                a["id"][:12],
                when(a["opened_at"], seconds=False),
                f"{a['model']}:{a['version']}",
                a["rule"],
                a["severity"],
                a["state"],
                a["condition"],
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
    alert: dict[str, Any] = remote.read(
        f"/v1/alerts/{remote.segment(alert_id)}",
        lambda services, caller: services.monitoring.alert(caller, alert_id).to_json(),
    )
    if as_json:
        print_json(alert)
        return
    console.print(
        f"[bold]{alert['id']}[/] · {alert['severity']} · {escape(alert['rule'])} on {alert['model']}:{alert['version']}"
    )
    console.print(f"condition: {escape(alert['condition'])} · state: {alert['state']}")
    for breach in alert["breaches"]:
        values = ", ".join(f"{k} = {v:.4g}" for k, v in breach["metrics"].items())
        console.print(f"  window {breach['label']}: {escape(values)}")
    for move in ("acknowledged", "resolved"):
        said = alert[move]
        if said:
            console.print(f"{move} by {said['by']} at {said['at']}: {escape(said['reason'])}")
    for d in alert["deliveries"]:
        outcome = "delivered" if d["delivered"] else "failed"
        console.print(f"  {d['channel']}: {outcome} after {d['attempts']} attempt(s) ({escape(d['detail'])})")


def _settle(alert_id: str, move: str, reason: str | None) -> dict[str, Any]:
    """The alert after ``move`` (acknowledge or resolve); an empty reason is the service's to refuse, after
    the role check, so the refusal is the same in either mode."""
    said = reason or ""
    found: dict[str, Any] = remote.change(
        "POST",
        f"/v1/alerts/{remote.segment(alert_id)}/{move}",
        lambda services, caller: getattr(services.monitoring, move)(caller, alert_id, said).to_json(),
        body={"reason": said},
    )
    return found


@app.command("ack", epilog="Examples:  medops alerts ack 3f9a1c2e7b10 -r 'checking the south site thermometers'")
def ack_cmd(
    alert_id: str = typer.Argument(..., metavar="ID", help="The alert's id (or its first 12 characters)."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Acknowledge an open alert: someone is on it (your name, time and reason are audited)."""
    alert = _settle(alert_id, "acknowledge", reason)
    done(as_json, f"alert {alert['id'][:12]} acknowledged", alert)


@app.command(
    "resolve", epilog="Examples:  medops alerts resolve 3f9a1c2e7b10 -r 'site south converts to C again (INC-231)'"
)
def resolve_cmd(
    alert_id: str = typer.Argument(..., metavar="ID", help="The alert's id (or its first 12 characters)."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Resolve an alert: dealt with. The rule fires again only on a later window."""
    alert = _settle(alert_id, "resolve", reason)
    done(as_json, f"alert {alert['id'][:12]} resolved", alert)
