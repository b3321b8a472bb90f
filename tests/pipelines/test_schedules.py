"""Schedules: cron in a time zone, each due time run once whatever the schedulers, one catch-up after a restart."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medops.pipelines import leases
from medops.pipelines.schedules import Schedule, Scheduler, cron_error, last_due, lease_name, zone_error
from medops.workspace import Workspace

NIGHTLY = Schedule("nightly", "0 2 * * *", "Europe/Paris", ("train",))
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_cron_and_zone_are_checked_with_a_readable_reason() -> None:
    assert cron_error("0 2 * * *") is None and cron_error("*/15 8-18 * * mon-fri") is None
    assert "five fields" in (cron_error("0 2 * *") or "")
    assert "not a valid cron" in (cron_error("61 2 * * *") or "")
    assert zone_error("Europe/Paris") is None and "not a time zone" in (zone_error("Mars/Olympus") or "")


def test_due_times_follow_the_schedule_s_time_zone() -> None:
    # 02:00 in Paris is 01:00 UTC in winter and 00:00 UTC in summer
    assert NIGHTLY.next_after(T0) == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert NIGHTLY.next_after(datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 2, 0, 0, tzinfo=UTC)
    assert NIGHTLY.latest_at_or_before(T0) == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    exactly = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert NIGHTLY.latest_at_or_before(exactly) == exactly


class Recorder:
    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime]] = []

    def __call__(self, schedule: Schedule, due_at: datetime) -> tuple[str | None, str]:
        self.fired.append((schedule.name, due_at))
        return "r" * 32, "finished"


def test_each_due_time_runs_once_and_a_new_schedule_has_no_past(workspace: Workspace) -> None:
    fire = Recorder()
    scheduler = Scheduler(workspace, "proj", {"nightly": NIGHTLY}, fire, started_at=T0)
    assert scheduler.tick(T0 + timedelta(hours=1)) == []  # the 01:00 UTC of that day was before it started
    night = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    fired = scheduler.tick(night + timedelta(minutes=1))
    assert [(f.schedule, f.due_at, f.outcome) for f in fired] == [("nightly", night, "finished")]
    assert scheduler.tick(night + timedelta(minutes=2)) == [] and len(fire.fired) == 1
    assert last_due(workspace, "proj", "nightly") == night


def test_after_a_restart_the_latest_missed_time_runs_once(workspace: Workspace) -> None:
    fire = Recorder()
    Scheduler(workspace, "proj", {"nightly": NIGHTLY}, fire, started_at=T0).tick(
        datetime(2026, 12, 2, 1, 5, tzinfo=UTC)
    )
    # down for three nights; restarted on the 5th at noon
    restarted = Scheduler(
        workspace, "proj", {"nightly": NIGHTLY}, fire, started_at=datetime(2026, 12, 5, 12, tzinfo=UTC)
    )
    fired = restarted.tick(datetime(2026, 12, 5, 12, tzinfo=UTC))
    assert [f.due_at for f in fired] == [datetime(2026, 12, 5, 1, 0, tzinfo=UTC)]  # not the 3rd and the 4th too
    assert restarted.tick(datetime(2026, 12, 5, 13, tzinfo=UTC)) == []


def test_two_schedulers_at_the_same_due_time_run_it_once(workspace: Workspace) -> None:
    fire = Recorder()
    a = Scheduler(workspace, "proj", {"nightly": NIGHTLY}, fire, started_at=T0, holder="a:1:x")
    b = Scheduler(workspace, "proj", {"nightly": NIGHTLY}, fire, started_at=T0, holder="b:2:y")
    at = datetime(2026, 12, 2, 1, 1, tzinfo=UTC)
    results: list[int] = []
    threads = [threading.Thread(target=lambda s=s: results.append(len(s.tick(at)))) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1] and len(fire.fired) == 1


def test_a_failed_run_is_recorded_and_the_scheduler_goes_on(workspace: Workspace) -> None:
    def broken(schedule: Schedule, due_at: datetime) -> tuple[str | None, str]:
        raise RuntimeError("the disk is full")

    scheduler = Scheduler(workspace, "proj", {"nightly": NIGHTLY}, broken, started_at=T0)
    fired = scheduler.tick(datetime(2026, 12, 2, 1, 1, tzinfo=UTC))
    assert fired[0].outcome == "failed: RuntimeError" and fired[0].run_id is None  # the type, not the message
    assert scheduler.tick(datetime(2026, 12, 2, 1, 2, tzinfo=UTC)) == []  # that due time is spent


def test_a_second_scheduler_stands_by_and_takes_over(workspace: Workspace) -> None:
    every_minute = Schedule("often", "* * * * *")
    first = leases.take(workspace.db, lease_name("proj"), holder="elsewhere:1:x", seconds=0.5)
    assert first is not None
    said: list[str] = []
    stop = threading.Event()
    standby = Scheduler(workspace, "proj", {"often": every_minute}, Recorder())
    thread = threading.Thread(target=standby.serve, args=(stop,), kwargs={"poll": 0.1, "said": said.append})
    thread.start()
    try:
        for _ in range(100):  # the other holder stops renewing: its lease passes on after 0.5 s
            if "took over the schedules" in said:
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert said[0].startswith("standby: the schedules of proj are run by elsewhere:1")
    assert "took over the schedules" in said
    assert leases.holder(workspace.db, lease_name("proj")) is None  # released when it stopped


def test_the_project_file_checks_its_schedules(tmp_path: Path) -> None:
    from medops.services.projects.project import ProjectError, load_project
    from medops.services.projects.templates import TEMPLATES_DIR

    text = (TEMPLATES_DIR / "readmission" / "medops.yaml").read_text()
    path = tmp_path / "medops.yaml"
    path.write_text(text + "\nschedules:\n  nightly: {cron: '0 25 * * *', timezone: Europe/Paris}\n")
    with pytest.raises(ProjectError, match=r"line \d+: schedules.nightly.cron: '0 25 \* \* \*' is not a valid cron"):
        load_project(path)
    path.write_text(text + "\nschedules:\n  nightly: {cron: '0 2 * * *', timezone: Paris}\n")
    with pytest.raises(ProjectError, match="schedules.nightly.timezone: 'Paris' is not a time zone"):
        load_project(path)
