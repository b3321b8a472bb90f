"""Appending to the audit trail, and the one service through which state changes happen.

Appends are serialized so the chain never forks: on PostgreSQL a transaction-scoped
advisory lock, on SQLite the write lock every medops write transaction takes at BEGIN
IMMEDIATE. The event is written in the caller's transaction, so a change and its event
commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from medops.audit.chain import GENESIS, canonical_json, event_hash
from medops.audit.state import GOVERNED, carried_state, state_of, unexplained
from medops.clock import to_iso, utc_now
from medops.errors import IntegrityError, InvalidInput
from medops.store.database import Database
from medops.store.schema import AuditEvent

# Arbitrary but fixed: the advisory lock id every medops process uses for the chain head.
AUDIT_LOCK_ID = 0x6D65646F7073  # "medops"


@dataclass(frozen=True)
class NewEvent:
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: Any = None
    after: Any = None
    reason: str | None = None


def _doc(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def lock_chain(session: Session) -> None:
    """Hold the chain's lock to the end of the transaction (re-entrant; SQLite holds its write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AUDIT_LOCK_ID})


def _lock_head(session: Session) -> tuple[int, str]:
    lock_chain(session)
    row = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def append_events(session: Session, events: Sequence[NewEvent], *, changes: bool = False) -> list[int]:
    """Append events at the chain head inside the caller's write transaction.

    ``changes``: the events record changes made in this transaction, so a governed entity's state
    is read now; otherwise they change nothing and carry the state last recorded.
    """
    for ev in events:
        for name in ("actor", "action", "entity_type", "entity_id"):
            if not getattr(ev, name):
                raise InvalidInput(f"an audit event needs a non-empty {name}")
    seq, prev = _lock_head(session)
    rows: list[dict[str, Any]] = []
    ts = to_iso(utc_now())
    states: dict[tuple[str, str], str | None] = {}  # nothing changes between the events of one batch
    for ev in events:
        seq += 1
        before, after = _doc(ev.before), _doc(ev.after)
        if (ev.entity_type, ev.entity_id) not in states:  # read after the change: it was flushed
            read = state_of if changes else carried_state
            states[ev.entity_type, ev.entity_id] = read(session, ev.entity_type, ev.entity_id)
        state = states[ev.entity_type, ev.entity_id]
        digest = event_hash(
            prev, seq, ts, ev.actor, ev.action, ev.entity_type, ev.entity_id, before, after, ev.reason or None, state
        )
        rows.append(
            dict(
                seq=seq,
                ts=ts,
                actor=ev.actor,
                action=ev.action,
                entity_type=ev.entity_type,
                entity_id=ev.entity_id,
                before=before,
                after=after,
                reason=ev.reason or None,
                prev_hash=prev,
                hash=digest,
                state=state,
            )
        )
        prev = digest
    if rows:
        session.execute(insert(AuditEvent), rows)
    return [int(r["seq"]) for r in rows]


def guard(session: Session, entity_type: str, entity_id: str) -> None:
    """Before changing a governed entity: refuse when its row is not as its latest event left it.

    On PostgreSQL the chain's lock is taken first, so the row and its latest event are read with
    no append in between (SQLite's write transaction holds its lock already).
    """
    if entity_type not in GOVERNED:
        return
    lock_chain(session)
    tampered = unexplained(session, entity_type, entity_id)
    if tampered is not None:
        raise IntegrityError(
            f"{tampered}; refusing to change it further",
            hint="verify the audit trail's state and restore the row from a verified backup",
            code="state_unexplained",
        )


@dataclass
class Change:
    """What a state change tells the trail: the entity's state before and after."""

    session: Session
    entity_id: str
    before: Any = None
    after: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class AuditTrail:
    """Performs state changes and records them, each pair in a single transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def change(
        self, actor: str, action: str, entity_type: str, entity_id: str, *, reason: str | None = None
    ) -> Iterator[Change]:
        """Yield a write session; on success append the event and commit both.

        A governed entity changed outside medops since its latest event is refused: the change
        would otherwise record the forged state as its own starting point.
        """
        with self.db.write() as session:
            guard(session, entity_type, entity_id)
            ch = Change(session=session, entity_id=entity_id)
            yield ch
            session.flush()
            append_events(
                session,
                [NewEvent(actor, action, entity_type, ch.entity_id, ch.before, ch.after, reason)],
                changes=True,
            )

    def record(self, event: NewEvent) -> int:
        """An event with no state change of its own (a denial, a failed login, a read of note)."""
        with self.db.write() as session:
            return append_events(session, [event])[0]

    def record_many(self, events: Sequence[NewEvent]) -> list[int]:
        """Append a batch in one transaction: one lock, one commit (bulk imports, benchmarks)."""
        with self.db.write() as session:
            return append_events(session, events)
