"""Appending to the audit trail, and the one service through which state changes happen.

Appends are serialized so the chain never forks: on PostgreSQL a transaction-scoped
advisory lock, on SQLite the write lock every medops write transaction takes at BEGIN
IMMEDIATE. The event is written in the caller's transaction, so a change and its event
commit together or not at all.

Every write transaction that appends events is a batch: before it opens, the trail makes
sure it can sign; right after it commits, it publishes a signed checkpoint of exactly that
batch (medops.audit.publisher). Event times never go backwards: they come from the
database server's clock on PostgreSQL and the local clock on SQLite, read after the lock,
and a time behind the trail's last one is raised to it within ``clock_tolerance`` and
refused beyond it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from medops import clock
from medops.audit.chain import GENESIS, canonical_json, event_hash
from medops.audit.publisher import CheckpointPublisher
from medops.audit.state import GOVERNED, carried_state, state_of, unexplained
from medops.errors import ConfigError, IntegrityError, InvalidInput
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


_BATCH = "medops_audit_batch"  # key in Session.info: the batch an AuditTrail write collects


@dataclass
class _Batch:
    """The events one write transaction appended: what its checkpoint will cover."""

    clock_tolerance: float
    first: int = 0
    size: int = 0
    head: str = ""


def lock_chain(session: Session) -> None:
    """Hold the chain's lock to the end of the transaction (re-entrant; SQLite holds its write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": AUDIT_LOCK_ID})


# Built once and run on the session's connection: every audited change runs these, and building a
# statement and passing it through the ORM session cost several times what SQLite takes to answer it.
_HEAD = select(AuditEvent.seq, AuditEvent.hash, AuditEvent.ts).order_by(AuditEvent.seq.desc()).limit(1)
_APPEND = insert(AuditEvent)


def _lock_head(session: Session) -> tuple[int, str, str | None]:
    lock_chain(session)
    row = session.connection().execute(_HEAD).first()
    return (row[0], row[1], row[2]) if row else (0, GENESIS, None)


def database_now(session: Session) -> datetime:
    """The time events are stamped with: the server's clock on PostgreSQL (one clock for every
    client), the local clock on SQLite (the database is a local file)."""
    if session.get_bind().dialect.name == "postgresql":
        moment: datetime = session.execute(text("SELECT clock_timestamp()")).scalar_one()
        return moment
    return clock.utc_now()


def event_time(session: Session, head_ts: str | None, tolerance: float) -> str:
    """Now, never before the trail's last event: raised to it within the tolerance, refused beyond."""
    now = clock.to_iso(database_now(session))
    if head_ts is None or now >= head_ts:  # fixed-width ISO strings sort as times do
        return now
    behind = (clock.parse_iso(head_ts) - clock.parse_iso(now)).total_seconds()
    if behind > tolerance:
        raise ConfigError(
            f"the clock is {behind:.1f} s behind the audit trail's last event ({head_ts}); "
            f"the tolerance is {tolerance:g} s, so the change was refused",
            hint="set this machine's clock right (NTP); on PostgreSQL events take the server's clock",
            code="clock_behind_trail",
        )
    return head_ts


def append_events(session: Session, events: Sequence[NewEvent], *, changes: bool = False) -> list[int]:
    """Append events at the chain head inside a write transaction opened by an AuditTrail.

    Only the trail's own transactions may append: they are the ones whose batch is anchored
    by a checkpoint once they commit. ``changes``: the events record changes made in this
    transaction, so a governed entity's state is read now; otherwise they change nothing and
    carry the state last recorded.
    """
    batch = session.info.get(_BATCH)
    if not isinstance(batch, _Batch):
        raise IntegrityError("audit events are appended only inside an AuditTrail write, which anchors them")
    for ev in events:
        for name in ("actor", "action", "entity_type", "entity_id"):
            if not getattr(ev, name):
                raise InvalidInput(f"an audit event needs a non-empty {name}")
    seq, prev, head_ts = _lock_head(session)
    rows: list[dict[str, Any]] = []
    ts = event_time(session, head_ts, batch.clock_tolerance)
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
        session.connection().execute(_APPEND, rows)
        batch.first = batch.first or int(rows[0]["seq"])
        batch.size, batch.head = seq, prev
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
    then: list[NewEvent] = field(default_factory=list)  # further changes made in the same transaction, in order


class AuditTrail:
    """Performs state changes and records them, each pair in a single transaction, and anchors
    every committed batch with a signed checkpoint."""

    def __init__(self, db: Database, publisher: CheckpointPublisher, *, clock_tolerance: float = 5.0) -> None:
        self.db = db
        self.publisher = publisher
        self.clock_tolerance = clock_tolerance

    def require_anchor(self) -> None:
        """Fail now, before any work, when a write could not be anchored (no key, store down)."""
        self.publisher.before_write()

    @contextmanager
    def _write(self, *, cover_from: int | None = None) -> Iterator[Session]:
        """A write transaction whose events are published as one checkpoint once it commits."""
        self.publisher.before_write()
        batch = _Batch(self.clock_tolerance)
        with self.db.write() as session:
            session.info[_BATCH] = batch
            yield session
        if batch.size:
            self.publisher.publish(cover_from or batch.first, batch.size, batch.head)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction for code that appends its own events (``append_events``), anchored
        like every other once it commits."""
        with self._write() as session:
            yield session

    @contextmanager
    def change(
        self, actor: str, action: str, entity_type: str, entity_id: str, *, reason: str | None = None
    ) -> Iterator[Change]:
        """Yield a write session; on success append the event and commit both.

        A governed entity changed outside medops since its latest event is refused: the change
        would otherwise record the forged state as its own starting point.
        """
        with self._write() as session:
            guard(session, entity_type, entity_id)
            ch = Change(session=session, entity_id=entity_id)
            yield ch
            session.flush()
            append_events(
                session,
                [NewEvent(actor, action, entity_type, ch.entity_id, ch.before, ch.after, reason), *ch.then],
                changes=True,
            )

    def record(self, event: NewEvent) -> int:
        """An event with no state change of its own (a denial, a failed login, a read of note)."""
        with self._write() as session:
            seq = append_events(session, [event])[0]
        return seq

    def record_many(self, events: Sequence[NewEvent]) -> list[int]:
        """Append a batch in one transaction: one lock, one commit (bulk imports, benchmarks)."""
        with self._write() as session:
            seqs = append_events(session, events)
        return seqs

    def adopt(self, event: NewEvent) -> int:
        """Record ``event`` under a checkpoint that covers the whole trail from event 1.

        For a trail written before checkpoints were published per batch: the key holder, having
        verified the chain, anchors it once. The event says who did and up to where.
        """
        with self._write(cover_from=1) as session:
            seq = append_events(session, [event])[0]
        return seq
