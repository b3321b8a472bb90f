"""History can't be cut, rolled back, rebuilt or padded unseen: the attacks, each caught."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from medops import clock
from medops.audit import NewEvent, event_hash
from medops.audit.anchoring import BACKWARDS, REWRITTEN, UNANCHORED
from medops.audit.checkpoint_store import checkpoint_names, read_checkpoint
from medops.audit.verify import DELETED
from medops.identity import Role
from medops.workspace import Workspace
from tests.audit.tamper import tampering
from tests.conftest import new_workspace, reset_pg
from tests.factories import PASSWORD, remove_checkpoint_store


def _grow(ws: Workspace, n: int, tag: str = "e") -> list[int]:
    return ws.trail.record_many([NewEvent("admin", "test.event", "thing", f"{tag}{i}") for i in range(n)])


def _kinds(ws: Workspace) -> dict[str, str]:
    report = ws.verify_audit()
    assert not report.ok
    return {p.kind: p.detail for p in report.problems}


@contextmanager
def later(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Verify a minute from now: every event is past the grace period for its checkpoint."""
    real = clock.utc_now
    monkeypatch.setattr(clock, "utc_now", lambda: real() + timedelta(seconds=60))
    try:
        yield
    finally:
        monkeypatch.setattr(clock, "utc_now", real)


def test_an_emptied_checkpoint_store_fails(workspace: Workspace) -> None:
    _grow(workspace, 4)
    assert workspace.verify_audit().ok
    remove_checkpoint_store(workspace)
    detail = _kinds(workspace)[UNANCHORED]
    assert "holds no checkpoint" in detail and "holds 6 events" in detail


def test_cut_back_to_an_older_checkpoint_while_the_newest_stays_published(workspace: Workspace) -> None:
    """Today's attack: cut the tail and delete the newest checkpoint where a database and workspace
    holder can reach it. The published checkpoint is in a store of its own: the cut shows."""
    older = _grow(workspace, 3)[-1]
    _grow(workspace, 4)
    legacy = Path(workspace.settings.artifact_root) / "audit-checkpoints"
    shutil.rmtree(legacy, ignore_errors=True)  # where checkpoints used to be: nothing there to delete now
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq > ?", older)
    problem = workspace.verify_audit().problem
    assert problem is not None and (problem.seq, problem.kind) == (older + 1, DELETED)
    assert "cut back or restored" in problem.detail


@pytest.fixture
def append_only_store(workspace: Workspace) -> Iterator[Path]:
    """The checkpoint folder made append-only (chattr +a): new files, no deletions, not even by its owner."""
    root = Path(workspace.settings.checkpoint_root)
    done = subprocess.run(["chattr", "+a", str(root)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this filesystem has no append-only attribute: {done.stderr.strip()}")
    yield root
    subprocess.run(["chattr", "-a", str(root)], check=True)


def test_newest_checkpoint_deleted_and_trail_cut_back_fails_on_an_append_only_store(
    workspace: Workspace, append_only_store: Path
) -> None:
    older = _grow(workspace, 3)[-1]
    _grow(workspace, 4)  # still published: the store is append-only, and link(2) needs no deletion
    newest = checkpoint_names(workspace.checkpoints)[-1]
    with pytest.raises(PermissionError):
        (append_only_store / newest).unlink()
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq > ?", older)
    problem = workspace.verify_audit().problem
    assert problem is not None and (problem.seq, problem.kind) == (older + 1, DELETED)


def test_deleting_the_newest_checkpoint_leaves_its_events_unanchored(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    seqs = _grow(workspace, 3)
    newest = Path(workspace.settings.checkpoint_root) / checkpoint_names(workspace.checkpoints)[-1]
    newest.unlink()
    assert workspace.verify_audit().ok  # just written: its checkpoint may still be on its way
    with later(monkeypatch):
        detail = _kinds(workspace)[UNANCHORED]
    assert f"events {seqs[0]} to {seqs[-1]} were never anchored" in detail


def test_restoring_an_older_database_and_artifact_folder_fails(tmp_path: Path) -> None:
    """The backup restore: the SQLite file and the artifact folder from before, the checkpoints from now."""
    ws = new_workspace(tmp_path)
    try:
        home = ws.settings.home
        ws.artifacts.put(b"before the backup")
        _grow(ws, 3)
        ws.db.dispose()
        backup = tmp_path / "backup"
        backup.mkdir()
        con = sqlite3.connect(home / "medops.db")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        shutil.copy2(home / "medops.db", backup / "medops.db")
        shutil.copytree(ws.settings.artifact_root, backup / "artifacts")
        ws.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
        ws.users.grant("admin", "alice", Role.ADMIN, reason="the change someone wants gone")
        ws.db.dispose()
        for suffix in ("-wal", "-shm"):
            (home / f"medops.db{suffix}").unlink(missing_ok=True)
        shutil.copy2(backup / "medops.db", home / "medops.db")
        shutil.rmtree(ws.settings.artifact_root)
        shutil.copytree(backup / "artifacts", ws.settings.artifact_root)
        report = ws.verify_audit()
        assert report.chain.ok and report.problem is not None and report.problem.kind == DELETED
        # and a trail that grew again from the restored copy differs from what was anchored
        _grow(ws, 5)
        assert REWRITTEN in {p.kind for p in ws.verify_audit().problems}
    finally:
        ws.close()


def test_a_well_chained_event_inserted_between_two_batches_is_named(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database writer appends a correctly linked event; a legitimate batch then builds on it.
    The chain is intact, but no checkpoint covers the forged event: only the key holder publishes."""
    _grow(workspace, 2, "a")
    with tampering(workspace) as t:
        seq, _, _, _, _, _, _, _, _, _, head = t.row(int(t.sql("SELECT max(seq) FROM audit_events")[0][0]))
        forged = seq + 1
        fields = [forged, clock.to_iso(clock.utc_now()), "admin", "user.grant", "user", "mallory", None, "{}", None]
        t.sql(
            "INSERT INTO audit_events (seq, ts, actor, action, entity_type, entity_id, before, after, reason, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *fields,
            head,
            event_hash(head, *fields),
        )
    _grow(workspace, 2, "b")
    with later(monkeypatch):
        report = workspace.verify_audit()
    assert report.chain.ok and report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (forged, UNANCHORED)
    assert f"events {forged} (1 in all) are covered by no checkpoint" in report.problem.detail


def test_events_younger_than_the_grace_period_are_pending_not_broken(workspace: Workspace) -> None:
    with tampering(workspace) as t:
        seq, *_, head = t.row(int(t.sql("SELECT max(seq) FROM audit_events")[0][0]))
        fields = [seq + 1, clock.to_iso(clock.utc_now()), "admin", "x", "thing", "1", None, None, None]
        t.sql(
            "INSERT INTO audit_events (seq, ts, actor, action, entity_type, entity_id, before, after, reason, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *fields,
            head,
            event_hash(head, *fields),
        )
    report = workspace.verify_audit()
    assert report.ok and report.pending == (seq + 1, seq + 1) and "not anchored yet" in report.warnings[0]


def test_rebuilt_trail_of_the_same_length_fails(workspace: Workspace) -> None:
    _grow(workspace, 4)
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq >= ?", 3)
    _grow(workspace, 4)  # a new, valid chain of the same length, anchored by its own checkpoint
    assert REWRITTEN in _kinds(workspace)


def test_backwards_event_times_in_an_old_trail_are_named(workspace: Workspace) -> None:
    """An old trail written with a clock that jumped back: rewrite event 5's time and every hash after it."""
    _grow(workspace, 6)
    with tampering(workspace) as t:
        rows = [list(t.row(seq)) for seq in range(1, 9)]
        rows[4][1] = clock.to_iso(clock.parse_iso(rows[3][1]) - timedelta(minutes=10))
        prev = rows[3][10]
        for row in rows[4:]:
            row[9], row[10] = prev, event_hash(prev, *row[:9])
            prev = row[10]
            t.sql(
                "UPDATE audit_events SET ts = ?, prev_hash = ?, hash = ? WHERE seq = ?", row[1], row[9], row[10], row[0]
            )
    report = workspace.verify_audit()
    assert report.chain.ok
    backwards = next(p for p in report.problems if p.kind == BACKWARDS)
    assert backwards.seq == 5 and "event 5's time is 600.0 s before event 4's" in backwards.detail


def test_postgres_owner_disables_triggers_and_deletes_the_tail(tmp_path: Path, pg_database: str) -> None:
    """The table owner can switch the append-only triggers off; the published checkpoints still see the cut."""
    import psycopg

    reset_pg(pg_database)
    ws = new_workspace(tmp_path, metadata_url=pg_database)
    try:
        kept = _grow(ws, 3)[-1]
        _grow(ws, 3)
        with psycopg.connect(pg_database.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
            conn.execute("DELETE FROM audit_events WHERE seq > %s", (kept,))
            conn.execute("ALTER TABLE audit_events ENABLE TRIGGER ALL")
        problem = ws.verify_audit().problem
        assert problem is not None and (problem.seq, problem.kind) == (kept + 1, DELETED)
    finally:
        ws.close()


def test_every_checkpoint_names_the_batch_it_covers(workspace: Workspace) -> None:
    seqs = _grow(workspace, 7)
    cp = read_checkpoint(workspace.checkpoints, checkpoint_names(workspace.checkpoints)[-1])
    assert f"from {seqs[0]}\nsize {seqs[-1]}\n" in cp.body()
