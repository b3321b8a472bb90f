"""Signed checkpoints make a cut-off tail and a rewritten trail visible."""

from __future__ import annotations

import pytest

from medops.audit import NewEvent
from medops.audit.checkpoint import NAMESPACE, Checkpoint, latest
from medops.audit.verify import DELETED
from medops.errors import IntegrityError
from medops.workspace import Workspace
from tests.audit.tamper import tampering
from tests.factories import log_in


def _grow(ws: Workspace, n: int) -> None:
    ws.trail.record_many([NewEvent("admin", "test.event", "thing", str(i)) for i in range(n)])


def test_verify_writes_a_checkpoint_only_when_the_head_moves(workspace: Workspace) -> None:
    _grow(workspace, 5)
    first = workspace.verify_audit()
    assert first.ok and first.written is not None and first.written.size == 7 and first.anchored_at is None
    again = workspace.verify_audit()
    assert again.ok and again.written is None and again.anchored_at == 7
    _grow(workspace, 3)
    third = workspace.verify_audit()
    assert third.anchored_at == 7 and third.written is not None and third.written.size == 10
    assert len(workspace.artifacts.list_named(NAMESPACE)) == 2


def test_truncated_tail_is_caught_by_the_checkpoint(workspace: Workspace) -> None:
    _grow(workspace, 8)
    assert workspace.verify_audit().written is not None
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq >= ?", 9)
    report = workspace.verify_audit()
    assert report.chain.ok  # the shorter chain still links up...
    assert report.problem is not None and (report.problem.seq, report.problem.kind) == (9, DELETED)


def test_rewritten_trail_is_caught_by_the_checkpoint(workspace: Workspace) -> None:
    """Someone rebuilds a fully consistent chain: only the checkpoint can tell."""
    _grow(workspace, 4)
    workspace.verify_audit()
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq >= ?", 3)
    _grow(workspace, 4)  # a new, valid chain of the same length
    report = workspace.verify_audit()
    assert report.chain.ok and report.problem is not None and report.problem.kind == "rewritten"


def test_forged_checkpoint_is_refused(workspace: Workspace) -> None:
    _grow(workspace, 2)
    cp = workspace.verify_audit().written
    assert cp is not None
    forged = Checkpoint(cp.origin, cp.size + 10, cp.head, cp.time, cp.key_id, cp.signature)
    workspace.artifacts.put_named(NAMESPACE, forged.name, forged.render().encode())
    report = workspace.verify_audit()
    assert report.problem is not None and report.problem.kind == "forged"


def test_malformed_checkpoint(workspace: Workspace) -> None:
    workspace.artifacts.put_named(NAMESPACE, "999999999999-x.checkpoint", b"hello")
    with pytest.raises(IntegrityError, match="malformed"):
        latest(workspace.artifacts)


def test_cli_verify_reports_a_cut_tail(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.cli.main import main

    monkeypatch.setenv("MEDOPS_HOME", str(workspace.settings.home))
    log_in(workspace, "admin")  # two events: the session opened, the login
    _grow(workspace, 1)
    with pytest.raises(SystemExit) as ok_exit:
        main(["audit", "verify"])
    assert ok_exit.value.code == 0 and "new checkpoint signed at event 5" in capsys.readouterr().out
    with tampering(workspace) as t:
        t.sql("DELETE FROM audit_events WHERE seq = ?", 5)
    with pytest.raises(SystemExit) as bad_exit:
        main(["audit", "verify"])
    assert bad_exit.value.code == 1
    assert "BROKEN at event 5 (deleted)" in capsys.readouterr().err
