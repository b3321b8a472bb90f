"""Many processes appending at once keep one unbroken chain, on both backends."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medops.audit import NewEvent, verify_chain
from medops.store.schema import AuditEvent
from medops.workspace import Workspace
from tests.factories import event, processes

WRITERS, EACH = 4, 500


def _writer(home: str, writer: int, count: int, start: mp.synchronize.Event) -> None:
    ws = Workspace.open(Path(home))
    start.wait()
    for i in range(count):
        ws.trail.record(NewEvent(f"writer{writer}", "test.append", "thing", f"{writer}-{i}", after={"i": i}))
    ws.close()


@pytest.mark.slow
def test_four_processes_append_500_events_each(workspace: Workspace) -> None:
    start = event()
    procs = processes(_writer, [(str(workspace.settings.home), w, EACH, start) for w in range(WRITERS)])
    start.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with workspace.db.read() as session:
        appended = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "test.append")
        )
        per_writer = dict(
            session.execute(
                select(AuditEvent.actor, func.count())
                .where(AuditEvent.action == "test.append")
                .group_by(AuditEvent.actor)
            ).all()
        )
    assert appended == WRITERS * EACH
    assert per_writer == {f"writer{w}": EACH for w in range(WRITERS)}
    result = verify_chain(workspace.db)
    assert result.ok, result.problem
    assert result.checked == WRITERS * EACH + 2
    # every writer published its own batches' checkpoints, under names that never collided
    report = workspace.verify_audit()
    assert report.ok, report.problems
    assert report.checkpoints >= WRITERS * EACH and report.anchored_at == result.head_seq
