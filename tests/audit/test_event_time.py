"""Event times never go backwards: a lagging clock is raised to the trail's head, a clock far behind refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medops import clock
from medops.audit import NewEvent
from medops.errors import ConfigError
from medops.workspace import Workspace


def _record(ws: Workspace, tag: str) -> int:
    return ws.trail.record(NewEvent("admin", "test.event", "thing", tag))


def _ts(ws: Workspace, seq: int) -> str:
    from sqlalchemy import select

    from medops.store.schema import AuditEvent

    with ws.db.read() as session:
        return session.execute(select(AuditEvent.ts).where(AuditEvent.seq == seq)).scalar_one()


def _clock_back(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = clock.utc_now
    monkeypatch.setattr(clock, "utc_now", lambda: real() - timedelta(seconds=seconds))


def test_a_local_clock_moved_back_beyond_the_tolerance_is_refused_on_sqlite(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    if workspace.db.dialect != "sqlite":
        # PostgreSQL stamps events with the server's clock: the client's clock does not matter
        first = _record(workspace, "a")
        _clock_back(monkeypatch, 3600)
        second = _record(workspace, "b")
        assert _ts(workspace, second) >= _ts(workspace, first)
        assert clock.parse_iso(_ts(workspace, second)) > clock.utc_now() + timedelta(seconds=3000)
        return
    head = _record(workspace, "a")
    _clock_back(monkeypatch, 60)
    with pytest.raises(ConfigError) as refused:
        _record(workspace, "b")
    assert refused.value.code == "clock_behind_trail"
    assert "60.0 s behind the audit trail's last event" in refused.value.message and "NTP" in (refused.value.hint or "")
    assert workspace.verify_audit().chain.head_seq == head  # nothing written


def test_a_clock_slightly_behind_takes_the_heads_time(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _record(workspace, "a")
    if workspace.db.dialect == "sqlite":
        _clock_back(monkeypatch, 2)  # within the 5 s tolerance: a second writer's clock a little behind
    second = _record(workspace, "b")
    assert _ts(workspace, second) >= _ts(workspace, first)
    assert workspace.verify_audit().ok


def test_the_tolerance_is_a_setting(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_CLOCK_TOLERANCE", "120")
    ws = Workspace.open(workspace.settings.home)
    try:
        assert ws.settings.clock_tolerance == 120.0 and ws.trail.clock_tolerance == 120.0
        if ws.db.dialect == "sqlite":
            _record(ws, "a")
            _clock_back(monkeypatch, 60)
            _record(ws, "b")  # within 120 s: kept monotone, not refused
    finally:
        ws.close()
    monkeypatch.setenv("MEDOPS_CLOCK_TOLERANCE", "0")
    with pytest.raises(ConfigError, match="clock_tolerance must be a positive"):
        Workspace.open(workspace.settings.home)
