"""The record of pipeline runs and their steps in the metadata store.

A run's start and end are audited changes; its steps are written as they go, so a run killed
mid-step leaves a step marked running, which the next run of the project finds and marks
interrupted (its lease is gone) before resuming after the last finished step.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from medops.clock import utc_now
from medops.errors import NotFound
from medops.identity import Role
from medops.platform import Platform
from medops.store.id_prefix import starts_with
from medops.store.lineage import Edge, add_edges
from medops.store.schema import PipelineRun, PipelineStep

PIPELINE_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
UNFINISHED = ("failed", "interrupted")


def lease_name(project: str) -> str:
    return f"pipeline:{project}"


def pipeline_node(run_id: str) -> str:
    return f"pipeline:{run_id}"


@dataclass(frozen=True)
class StepRecord:
    id: int
    run_id: str
    step: str
    position: int
    key: str | None
    inputs: dict[str, Any]
    state: str
    note: str
    outputs: dict[str, Any] | None
    started_at: datetime
    ended_at: datetime | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "state": self.state,
            "note": self.note,
            "key": self.key,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": round((self.ended_at - self.started_at).total_seconds(), 3) if self.ended_at else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class RunRecord:
    id: str
    project: str
    project_sha256: str
    trigger: str
    requested: dict[str, Any]
    state: str
    resumes: str | None
    created_by: str
    host: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    steps: list[StepRecord]

    @property
    def short(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "project_sha256": self.project_sha256,
            "trigger": self.trigger,
            "requested": self.requested,
            "state": self.state,
            "resumes": self.resumes,
            "created_by": self.created_by,
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
            "steps": [s.to_json() for s in self.steps],
        }


def start(
    ws: Platform, project: str, sha256: str, trigger: str, requested: dict[str, Any], resumes: str | None, *, actor: str
) -> str:
    """A new run, recorded and audited (refused, and the refusal audited, without a pipeline role)."""
    run_id = uuid.uuid4().hex
    now = utc_now()
    with ws.users.authorized(actor, "pipeline.start", "pipeline_run", run_id, PIPELINE_ROLES) as ch:
        ch.session.add(
            PipelineRun(
                id=run_id,
                project=project,
                project_sha256=sha256,
                trigger=trigger,
                requested=json.dumps(requested, sort_keys=True),
                state="running",
                resumes=resumes,
                created_by=actor,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
            )
        )
        ch.after = {"project": project, "project_sha256": sha256, "trigger": trigger, "resumes": resumes}
        if trigger.startswith("alert:"):  # the retraining loop, one chain in lineage: alert -> run -> what it made
            add_edges(ch.session, [Edge(trigger, pipeline_node(run_id), "triggered", {})], actor)
    return run_id


def finish(ws: Platform, run_id: str, state: str, *, actor: str, error: str | None = None) -> None:
    with ws.users.authorized(actor, "pipeline.finish", "pipeline_run", run_id, PIPELINE_ROLES) as ch:
        row = ch.session.get(PipelineRun, run_id, with_for_update=True)
        assert row is not None
        ch.before = {"state": row.state}
        row.state, row.ended_at, row.error = state, utc_now(), error
        ch.after = {"state": state, **({"error": error} if error else {})}


def begin_step(
    ws: Platform,
    run_id: str,
    project: str,
    step: str,
    position: int,
    key: str | None,
    inputs: dict[str, Any],
    note: str,
) -> int:
    now = utc_now()
    with ws.db.write() as session:
        row = PipelineStep(
            run_id=run_id,
            project=project,
            step=step,
            position=position,
            key=key,
            inputs=json.dumps(inputs, sort_keys=True, default=str),
            state="running",
            note=note,
            started_at=now,
        )
        session.add(row)
        session.execute(update(PipelineRun).where(PipelineRun.id == run_id).values(heartbeat_at=now))
        session.flush()
        return row.id


def end_step(
    ws: Platform,
    step_id: int,
    state: str,
    *,
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
    note: str | None = None,
) -> None:
    with ws.db.write() as session:
        row = session.get(PipelineStep, step_id, with_for_update=True)
        assert row is not None
        row.state, row.ended_at, row.error = state, utc_now(), error
        if outputs is not None:
            row.outputs = json.dumps(outputs, sort_keys=True, default=str)
        if note is not None:
            row.note = note


def latest_done(ws: Platform, project: str, step: str, key: str | None = None) -> StepRecord | None:
    """The newest record of ``step`` that ran to its end (done), or was skipped as unchanged, with ``key``
    when given: what a cache hit reuses, and what a changed step is compared with."""
    query = select(PipelineStep).where(
        PipelineStep.project == project, PipelineStep.step == step, PipelineStep.state.in_(("done", "skipped"))
    )
    if key is not None:
        query = query.where(PipelineStep.key == key)
    query = query.where(PipelineStep.outputs.is_not(None)).order_by(PipelineStep.id.desc()).limit(1)
    with ws.db.read() as session:
        row = session.scalars(query).first()
        return _step(row) if row is not None else None


def mark_interrupted(ws: Platform, project: str, alive: bool) -> list[str]:
    """Runs of ``project`` left running by a process that is gone (``alive`` False: its lease is free):
    they and their running step become interrupted. Returns their ids."""
    if alive:
        return []
    with ws.db.write() as session:
        stale = list(
            session.scalars(
                select(PipelineRun.id).where(PipelineRun.project == project, PipelineRun.state == "running")
            )
        )
        if not stale:
            return []
        now = utc_now()
        session.execute(
            update(PipelineStep)
            .where(PipelineStep.run_id.in_(stale), PipelineStep.state == "running")
            .values(state="interrupted", ended_at=now, error="the process running it ended (killed or crashed)")
        )
        session.execute(
            update(PipelineRun)
            .where(PipelineRun.id.in_(stale))
            .values(state="interrupted", ended_at=now, error="the process running it ended before it finished")
        )
    return stale


def to_resume(ws: Platform, project: str) -> RunRecord | None:
    """The project's newest run when it did not finish (failed or interrupted): the one a new run takes up."""
    with ws.db.read() as session:
        row = session.scalars(
            select(PipelineRun)
            .where(PipelineRun.project == project, PipelineRun.state != "running")
            .order_by(PipelineRun.started_at.desc())
            .limit(1)
        ).first()
        if row is None or row.state not in UNFINISHED:
            return None
    return get(ws, row.id)


def listing(ws: Platform, project: str | None = None, limit: int = 50) -> list[RunRecord]:
    query = select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit)
    if project:
        query = query.where(PipelineRun.project == project)
    with ws.db.read() as session:
        runs = list(session.scalars(query))
        ids = [r.id for r in runs]
        steps: dict[str, list[StepRecord]] = {i: [] for i in ids}
        if ids:
            for s in session.scalars(
                select(PipelineStep).where(PipelineStep.run_id.in_(ids)).order_by(PipelineStep.id)
            ):
                steps[s.run_id].append(_step(s))
    return [_run(r, steps[r.id]) for r in runs]


def get(ws: Platform, ref: str) -> RunRecord:
    """A run by its id or a unique prefix of it (at least 6 characters)."""
    ref = ref.strip().removeprefix("pipeline:").lower()
    if len(ref) < 6:
        raise NotFound(f"pipeline run {ref!r}: give at least 6 characters of its id", code="pipeline_run_not_found")
    with ws.db.read() as session:
        rows = list(session.scalars(select(PipelineRun).where(starts_with(PipelineRun.id, ref)).limit(2)))
        if len(rows) != 1:
            what = "is ambiguous" if rows else "is not known"
            raise NotFound(f"pipeline run {ref!r} {what}", code="pipeline_run_not_found")
        steps = [
            _step(s)
            for s in session.scalars(
                select(PipelineStep).where(PipelineStep.run_id == rows[0].id).order_by(PipelineStep.id)
            )
        ]
        return _run(rows[0], steps)


def _step(row: PipelineStep) -> StepRecord:
    return StepRecord(
        row.id,
        row.run_id,
        row.step,
        row.position,
        row.key,
        json.loads(row.inputs),
        row.state,
        row.note,
        json.loads(row.outputs) if row.outputs else None,
        row.started_at,
        row.ended_at,
        row.error,
    )


def _run(row: PipelineRun, steps: list[StepRecord]) -> RunRecord:
    return RunRecord(
        row.id,
        row.project,
        row.project_sha256,
        row.trigger,
        json.loads(row.requested),
        row.state,
        row.resumes,
        row.created_by,
        row.host,
        row.started_at,
        row.ended_at,
        row.error,
        steps,
    )
