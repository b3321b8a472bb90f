"""`medops scheduler`: run the project file's schedules on this machine, one scheduler at a time."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from medops.cli.common import JsonOption, channels_of, cli_caller, console, open_workspace, print_json
from medops.cli.data import ProjectOption, project_at

EPILOG = "Examples:  MEDOPS_TOKEN=... medops scheduler   ·   medops scheduler --once   ·   medops scheduler --list"


def scheduler(
    project: Path | None = ProjectOption,
    once: bool = typer.Option(False, "--once", help="Run what is due now, then exit (for an outside cron or a test)."),
    listing: bool = typer.Option(False, "--list", help="Show each schedule's next and last due time, then exit."),
    poll: float = typer.Option(30.0, "--poll", min=1.0, metavar="SECONDS", help="How often to look at the clock."),
    as_json: bool = JsonOption,
) -> None:
    """Run the project's schedules (its `schedules` section: cron and time zone) until stopped.

    Each due time runs `medops run` of the schedule's steps, as the user your credential proves
    (for a service, an API token in MEDOPS_TOKEN), checked again at every run. A second
    scheduler of the same project waits on standby and takes over if the first dies; a due time
    never runs twice. After a restart, the most recent due time missed while stopped runs once.
    """
    from medops.clock import utc_now
    from medops.pipelines.schedules import last_due
    from medops.services import Services

    loaded = project_at(project)
    with open_workspace(here=True) as ws:
        services = Services(ws)
        caller = cli_caller(ws, writes=not listing)
        runner = services.pipelines.scheduler(
            caller,
            loaded,
            again=lambda: cli_caller(ws, writes=True),
            channels=channels_of(services.pipelines.monitor_spec()),
        )
        if listing:
            now = utc_now()
            rows: list[dict[str, Any]] = [
                {
                    "schedule": s.name,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "steps": list(s.steps) or ["(all)"],
                    "next": s.next_after(now).isoformat(),
                    "last": (lambda d: d.isoformat() if d else None)(last_due(ws, loaded.spec.name, s.name)),
                }
                for s in runner.schedules.values()
            ]
            if as_json:
                print_json(rows)
                return
            for r in rows:
                console.print(
                    f"  {escape(r['schedule']):<16} {escape(r['cron']):<16} {r['timezone']:<16} next {r['next']}"
                    f"  last {r['last'] or '-'}  steps {', '.join(r['steps'])}"
                )
            return
        if once:
            fired = runner.tick()
            if as_json:
                print_json([{"schedule": f.schedule, "due_at": f.due_at.isoformat(), "run": f.run_id,
                             "outcome": f.outcome} for f in fired])  # fmt: skip
                return
            for f in fired:
                console.print(
                    f"  {escape(f.schedule)} due {f.due_at.isoformat()}: run {str(f.run_id)[:12]} {f.outcome}"
                )
            console.print(f"{len(fired)} schedule(s) ran" if fired else "nothing due")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"scheduler of {escape(loaded.spec.name)}: {len(runner.schedules)} schedule(s); Ctrl-C stops it")
        runner.serve(
            stop,
            poll=poll,
            said=lambda m: console.print(f"  {escape(m)}"),
            fired=lambda f: console.print(
                f"  {escape(f.schedule)} due {f.due_at.isoformat()}: run {str(f.run_id)[:12]} {f.outcome}"
            ),
        )
