"""Does every governed row now hold the state its latest audit event recorded?

One pass over the governed events (keeping the latest per entity) and one read of each
governed table. A row that differs from its latest event's state, a row no event made, and
a row gone that no event removed are each named; so are entities whose latest event came
before state hashing existed and therefore can't be checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from medops.audit.state import current_states, digest, governed_types, state_key
from medops.store.database import Database
from medops.store.schema import AuditEvent

CHANGED, UNEXPLAINED, VANISHED = "changed", "unexplained", "vanished"


@dataclass(frozen=True)
class StateProblem:
    entity_type: str
    entity_id: str
    kind: str  # changed, unexplained or vanished
    detail: str
    last_seq: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "entity": f"{self.entity_type}:{self.entity_id}",
            "kind": self.kind,
            "detail": self.detail,
            "last_event": self.last_seq,
        }


@dataclass(frozen=True)
class StateCheck:
    checked: int  # governed rows compared
    problems: list[StateProblem] = field(default_factory=list)
    unhashed: list[str] = field(default_factory=list)  # entities whose latest event predates state hashing

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": [p.to_json() for p in self.problems],
            "unhashed": self.unhashed,
        }


@dataclass(frozen=True)
class _Last:
    seq: int
    action: str
    actor: str
    ts: str
    state: str | None


def _latest_events(db: Database, types: list[str]) -> dict[tuple[str, str], _Last]:
    latest: dict[tuple[str, str], _Last] = {}
    query = (
        select(
            AuditEvent.seq,
            AuditEvent.entity_type,
            AuditEvent.entity_id,
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.ts,
            AuditEvent.state,
        )
        .where(AuditEvent.entity_type.in_(types))
        .order_by(AuditEvent.seq)
    )
    with db.guard(), db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(query)
        for seq, etype, eid, action, actor, ts, state in result:
            key = state_key(etype, eid)
            assert key is not None
            latest[etype, key] = _Last(seq, action, actor, ts, state)
    return latest


def check_state(db: Database) -> StateCheck:
    """Compare every governed row with the state its entity's latest event recorded."""
    types = list(governed_types())
    latest = _latest_events(db, types)
    absent = digest(None)
    problems: list[StateProblem] = []
    unhashed: list[str] = []
    checked = 0
    with db.read() as session:
        now = {etype: current_states(session, etype) for etype in types}
    for etype in types:
        rows = now[etype]
        keys = set(rows) | {key for (t, key) in latest if t == etype}
        for key in sorted(keys):
            state = rows.get(key, absent)
            last = latest.get((etype, key))
            checked += key in rows
            if last is None:
                if key in rows:
                    problems.append(
                        StateProblem(
                            etype, key, UNEXPLAINED, "no audit event made this row: it was written in SQL", None
                        )
                    )
                continue
            if last.state is None:
                unhashed.append(f"{etype}:{key}")
                continue
            if last.state == state:
                continue
            told = f"event {last.seq} ({last.action} by {last.actor} at {last.ts})"
            if key not in rows:
                problems.append(
                    StateProblem(
                        etype, key, VANISHED, f"the row is gone, but no event removed it; last: {told}", last.seq
                    )
                )
            else:
                problems.append(
                    StateProblem(
                        etype,
                        key,
                        CHANGED,
                        f"the row differs from the state its latest event recorded, {told}: changed outside medops",
                        last.seq,
                    )
                )
    return StateCheck(checked, problems, unhashed)
