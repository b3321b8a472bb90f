"""Monitoring over the prediction log on both backends: the profile made at registration, calendar
windows judged per version and stored append-only, roles, audit, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from medops.audit import AuditFilter, list_events
from medops.caller import Caller
from medops.errors import Conflict, InvalidInput, MedopsError, NotFound, PermissionDenied
from medops.monitoring import profiles, windows
from medops.monitoring.windows import spans
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES, cohort
from tests.monitoring.conftest import NOVEMBER, OCTOBER, log_rows

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def test_registration_stores_the_profile_once_and_backfill_makes_a_missing_one(
    monitored: tuple[Workspace, Any],
) -> None:
    ws, version = monitored
    info = profiles.get(ws, "readmission", version.version)
    profile = profiles.load(ws, "readmission", version.version)
    assert info.rows == profile.rows > 1000 and set(profile.features) == set(COHORT_FEATURES)
    assert profile.performance["metrics"]["auroc"]["low"] <= profile.performance["metrics"]["auroc"]["value"]
    service = Services(ws)
    with pytest.raises(Conflict, match="already has its reference profile"):
        service.monitoring.profile(Caller("alice"), version.ref)
    with pytest.raises(InvalidInput, match="name the version"):
        service.monitoring.profile(Caller("alice"), "readmission")
    events = list_events(ws.db, AuditFilter(action="monitor.profile"))
    assert [(e.actor, e.entity_id) for e in events] == [("alice", version.ref)]
    # a version registered without its profile (as before monitoring existed) gets one from backfill
    second = service.registry.register(Caller("alice"), version.run_id, "readmission", profile=False)
    with pytest.raises(NotFound, match="no reference profile"):
        profiles.get(ws, "readmission", second.version)
    assert profiles.missing(ws) == [("readmission", second.version)]
    # its logged answers are not judged (and say why) while the first version's windows are
    log_rows(ws, version.run_id, second, cohort(300, biased=False, seed=23), OCTOBER)
    ran = service.monitoring.run(Caller("ming"), "readmission", since=OCTOBER, until=NOVEMBER)
    assert [(w.label, w.version) for w in ran.windows] == [("2026-10", version.version)]
    assert [(v, "no reference profile" in why) for v, why in ran.skipped] == [(second.version, True)]
    with pytest.raises(PermissionDenied):
        service.monitoring.backfill(Caller("audrey"))
    result = service.monitoring.backfill(Caller("alice"))
    assert [(p.model, p.version) for p in result.profiled] == [("readmission", second.version)] and not result.failed
    assert profiles.missing(ws) == []


def test_each_month_is_judged_against_the_profile(monitored: tuple[Workspace, Any]) -> None:
    ws, version = monitored
    service = Services(ws).monitoring
    with pytest.raises(PermissionDenied):
        service.run(Caller("audrey"), "readmission", since=OCTOBER)  # an auditor reads, never writes
    with pytest.raises(NotFound, match="holds nothing"):
        service.run(Caller("ming"), "sepsis")
    with pytest.raises(InvalidInput, match="not a window"):
        service.run(Caller("ming"), "readmission", window="fortnight", since=OCTOBER)
    weeks = service.run(
        Caller("ming"), "readmission", window="7d", since=OCTOBER, until=datetime(2026, 10, 20, tzinfo=UTC)
    )
    assert [w.label for w in weeks.windows] == ["2026-10-01+7d", "2026-10-08+7d"]  # only complete windows
    found = service.run(Caller("ming"), "readmission", since=OCTOBER, until=datetime(2026, 12, 1, tzinfo=UTC)).windows
    assert [(w.label, w.rows, w.judged) for w in found] == [("2026-10", 900, True), ("2026-11", 900, True)]
    assert found[0].drifted == []
    assert found[1].drifted == ["age"]
    assert found[1].metrics["drift.age.psi"] > 0.2 > found[0].metrics["drift.age.psi"]
    info, doc = service.show(Caller("audrey"), found[1].id[:12])
    assert info.id == found[1].id and doc["features"]["age"]["drifted"] and doc["window"] == "2026-11"
    assert doc["prediction"]["drifted"]  # older patients: higher risk scores
    with pytest.raises(NotFound, match="no monitored window"):
        service.show(Caller("audrey"), "abc")
    with pytest.raises(PermissionDenied):
        service.windows(Caller("pete"))  # a prediction token reads nothing else
    # judged again: a new record, and the listing shows the newest of each window
    again = service.run(Caller("ming"), "readmission", since=NOVEMBER, until=found[1].end).windows
    listed = service.windows(Caller("audrey"), "readmission")
    assert listed[0].id == again[0].id and found[0].id in {w.id for w in listed} and len(listed) == 4
    assert len(list_events(ws.db, AuditFilter(action="monitor.window"))) == 5  # two weeks, two months, one again
    # a quieter verdict can't be written over the stored one, nor a profile's grid moved, whoever connects
    for statement in (
        "UPDATE monitor_windows SET drifted = '[]'",
        "DELETE FROM monitor_windows",
        "UPDATE reference_profiles SET rows = 1",
        "DELETE FROM reference_profiles",
    ):
        with pytest.raises(MedopsError), ws.db.write() as session:
            session.execute(text(statement))
    assert service.show(Caller("audrey"), found[1].id)[0].drifted == ["age"]


def test_window_spans() -> None:
    months = spans("calendar-month", datetime(2026, 11, 17, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    assert [(s.label, s.start.day, s.end.month) for s in months] == [
        ("2026-11", 1, 12),
        ("2026-12", 1, 1),
        ("2027-01", 1, 2),
    ]
    assert spans("30d", datetime(2026, 11, 17, 15, tzinfo=UTC), datetime(2026, 12, 16, tzinfo=UTC)) == []
    assert np.all([s.end - s.start == timedelta(days=7) for s in spans("7d", OCTOBER, OCTOBER + timedelta(days=30))])
    assert windows.finite({"a": [float("nan"), 1.0]}) == {"a": [None, 1.0]}
