"""Schedules: cron expressions in a time zone, each due time claimed once, one active scheduler.

A scheduler holds the lease ``scheduler:PROJECT``; a second one started beside it waits on
standby and takes over when the first stops renewing (its machine died) or at once when the
first was a process of this machine that ended. Each due time is claimed by inserting its row
(project, schedule, due time): the primary key refuses a second claim, so even two schedulers
that both believe they hold the lease never run a due time twice. After a restart, a scheduler
runs the most recent due time it missed while down (once, not every missed one, as a
Kubernetes CronJob does), then follows the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select

from medops.clock import utc_now
from medops.errors import Conflict
from medops.pipelines import leases
from medops.platform import Platform
from medops.store.schema import ScheduleFire

POLL_SECONDS = 30.0


def cron_error(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or None."""
    if len(expression.split()) != 5:
        return f"{expression!r} is not a cron expression: five fields (minute hour day month weekday), e.g. '0 2 * * *'"
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression (minute hour day month weekday)"
    return None


def zone_error(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone: use an IANA name such as UTC or Europe/Paris"
    return None


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    timezone: str = "UTC"
    steps: tuple[str, ...] = ()

    def next_after(self, moment: datetime) -> datetime:
        """The first due time after ``moment``, in UTC."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        nxt: datetime = croniter(self.cron, local).get_next(datetime)
        return nxt.astimezone(ZoneInfo("UTC"))

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last due time at or before ``moment``, in UTC."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        it = croniter(self.cron, local)
        if it.match(self.cron, local.replace(second=0, microsecond=0)) and local.second == 0 and not local.microsecond:
            return local.astimezone(ZoneInfo("UTC"))
        prev: datetime = it.get_prev(datetime)
        return prev.astimezone(ZoneInfo("UTC"))


def lease_name(project: str) -> str:
    return f"scheduler:{project}"


def last_due(ws: Platform, project: str, schedule: str) -> datetime | None:
    with ws.db.read() as session:
        found: datetime | None = session.scalar(
            select(func.max(ScheduleFire.due_at)).where(
                ScheduleFire.project == project, ScheduleFire.schedule == schedule
            )
        )
    return found


def claim(ws: Platform, project: str, schedule: str, due_at: datetime, holder: str) -> bool:
    """True for the one caller that claims this due time first."""
    try:
        with ws.db.write() as session:
            if session.get(ScheduleFire, (project, schedule, due_at)) is not None:
                return False
            session.add(
                ScheduleFire(project=project, schedule=schedule, due_at=due_at, claimed_at=utc_now(), claimed_by=holder)
            )
    except Conflict:  # another scheduler inserted it between our read and our insert
        return False
    return True


def settle(ws: Platform, project: str, schedule: str, due_at: datetime, run_id: str | None, outcome: str) -> None:
    with ws.db.write() as session:
        row = session.get(ScheduleFire, (project, schedule, due_at), with_for_update=True)
        if row is not None:
            row.pipeline_run_id, row.outcome = run_id, outcome[:2000]


Fire = Callable[[Schedule, datetime], tuple[str | None, str]]  # -> (pipeline run id, outcome)


@dataclass(frozen=True)
class Fired:
    schedule: str
    due_at: datetime
    run_id: str | None
    outcome: str


class Scheduler:
    """Runs a project's schedules while it holds the project's scheduler lease."""

    def __init__(
        self,
        ws: Platform,
        project: str,
        schedules: Mapping[str, Schedule],
        fire: Fire,
        *,
        started_at: datetime | None = None,
        holder: str | None = None,
    ) -> None:
        self.ws, self.project, self.schedules, self.fire = ws, project, dict(schedules), fire
        self.started_at = started_at or utc_now()
        self.holder = holder or leases.holder_id()

    def due(self, now: datetime) -> list[tuple[Schedule, datetime]]:
        """Each schedule's latest due time not yet claimed, if it came after the last claimed one (or, for a
        schedule never run, after this scheduler started: a new schedule does not run for its past)."""
        out = []
        for schedule in self.schedules.values():
            latest = schedule.latest_at_or_before(now)
            since = last_due(self.ws, self.project, schedule.name) or self.started_at
            if latest > since:
                out.append((schedule, latest))
        return out

    def tick(self, now: datetime | None = None) -> list[Fired]:
        """Run what is due now (one run per schedule at most), each due time claimed first."""
        fired = []
        for schedule, due_at in self.due(now or utc_now()):
            if not claim(self.ws, self.project, schedule.name, due_at, self.holder):
                continue
            try:
                run_id, outcome = self.fire(schedule, due_at)
            except Exception as exc:  # a run that failed is recorded as such; the scheduler goes on
                run_id, outcome = None, f"failed: {getattr(exc, 'message', None) or type(exc).__name__}"
            settle(self.ws, self.project, schedule.name, due_at, run_id, outcome)
            fired.append(Fired(schedule.name, due_at, run_id, outcome))
        return fired

    def serve(
        self,
        stop: threading.Event,
        *,
        poll: float = POLL_SECONDS,
        said: Callable[[str], None] = lambda message: None,
        fired: Callable[[Fired], None] = lambda f: None,
    ) -> None:
        """Tick every ``poll`` seconds while holding the lease; on standby while another scheduler holds it."""
        name = lease_name(self.project)
        standby = False
        while not stop.is_set():
            held = leases.take(self.ws.db, name, holder=self.holder)
            if held is None:
                if not standby:
                    who = leases.holder(self.ws.db, name) or "another scheduler"
                    said(f"standby: the schedules of {self.project} are run by {who.rsplit(':', 1)[0]}")
                    standby = True
                stop.wait(poll)
                continue
            if standby:
                said("took over the schedules")
                standby = False
            keeper = leases.Keeper(self.ws.db, held)
            try:
                while not stop.is_set() and not keeper.lost.is_set():
                    for f in self.tick():
                        fired(f)
                    stop.wait(poll)
            finally:
                keeper.close()
