"""Tampering with the stored trail is detected at the right event, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from medops.audit import NewEvent, event_hash, verify_chain
from medops.audit.verify import ALTERED, DELETED, INSERTED, REORDERED
from medops.errors import MedopsError
from medops.workspace import Workspace
from tests.audit.tamper import tampering
from tests.factories import log_in


@pytest.fixture
def trail(workspace: Workspace) -> Workspace:
    """A workspace whose trail holds 20 events (2 from init + 18 here)."""
    workspace.trail.record_many(
        [
            NewEvent("admin", "test.event", "thing", f"t{i}", before={"n": i}, after={"n": i + 1}, reason=f"r{i}")
            for i in range(18)
        ]
    )
    assert verify_chain(workspace.db).checked == 20
    return workspace


def _problem(ws: Workspace) -> tuple[int, str]:
    result = verify_chain(ws.db)
    assert not result.ok
    assert result.problem is not None
    return result.problem.seq, result.problem.kind


def test_intact_chain_passes(trail: Workspace) -> None:
    result = verify_chain(trail.db)
    assert result.ok and result.checked == 20 and result.head_seq == 20


def test_changed_details_are_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        t.sql("UPDATE audit_events SET after = ? WHERE seq = ?", '{"n":999}', 7)
    assert _problem(trail) == (7, ALTERED)


def test_changed_details_with_rewritten_hash_are_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        row = list(t.row(9))
        row[8] = "a better-sounding reason"
        forged = event_hash(row[9], *row[:9])
        t.sql("UPDATE audit_events SET reason = ?, hash = ? WHERE seq = ?", row[8], forged, 9)
    assert _problem(trail) == (9, ALTERED)


def test_deleted_event_is_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        t.sql("DELETE FROM audit_events WHERE seq = ?", 11)
    assert _problem(trail) == (11, DELETED)


def test_deleted_event_with_renumbering_is_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        t.sql("DELETE FROM audit_events WHERE seq = ?", 11)
        t.renumber(11, -1)
    assert _problem(trail) == (11, DELETED)


def test_inserted_event_is_named(trail: Workspace) -> None:
    """A forger who knows the algorithm links a new event after 12 and renumbers the rest."""
    with tampering(trail) as t:
        prev = t.row(12)
        t.renumber(12, 1)
        fields = [13, prev[1], "admin", "user.grant", "user", "mallory", None, '{"roles":["admin"]}', None]
        forged = event_hash(prev[10], *fields)
        t.sql(
            "INSERT INTO audit_events (seq, ts, actor, action, entity_type, entity_id, before, after, reason, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *fields,
            prev[10],
            forged,
        )
    assert _problem(trail) == (13, INSERTED)


def test_inserted_event_at_the_end_is_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        t.sql(
            "INSERT INTO audit_events (seq, ts, actor, action, entity_type, entity_id, before, after, reason, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            21,
            "2026-01-01T00:00:00.000000Z",
            "admin",
            "user.add",
            "user",
            "ghost",
            None,
            None,
            None,
            "f" * 64,
            "e" * 64,
        )
    assert _problem(trail) == (21, INSERTED)


def test_swapped_events_are_named(trail: Workspace) -> None:
    with tampering(trail) as t:
        t.sql("UPDATE audit_events SET seq = -1 WHERE seq = 5")
        t.sql("UPDATE audit_events SET seq = 5 WHERE seq = 6")
        t.sql("UPDATE audit_events SET seq = 6 WHERE seq = -1")
    assert _problem(trail) == (5, REORDERED)


def test_database_refuses_update_and_delete_of_events(trail: Workspace) -> None:
    for statement in ("UPDATE audit_events SET reason = 'x' WHERE seq = 3", "DELETE FROM audit_events WHERE seq = 3"):
        with pytest.raises(MedopsError, match="append-only"):
            with trail.db.write() as session:
                session.execute(text(statement))
    assert verify_chain(trail.db).ok


def test_break_is_reported_by_the_cli(
    trail: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.cli.main import main

    monkeypatch.setenv("MEDOPS_HOME", str(trail.settings.home))
    log_in(trail, "admin")
    with tampering(trail) as t:
        t.sql("DELETE FROM audit_events WHERE seq = ?", 4)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify"])
    assert exit_info.value.code == 1
    assert "BROKEN at event 4 (deleted)" in capsys.readouterr().err
