"""Recompute the audit chain and, at the first break, say which event and what happened."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from medops.audit.chain import GENESIS, event_hash
from medops.store.database import Database
from medops.store.schema import AuditEvent

ALTERED, DELETED, INSERTED, REORDERED = "altered", "deleted", "inserted", "reordered"
_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.ts,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.entity_type,
    AuditEvent.entity_id,
    AuditEvent.before,
    AuditEvent.after,
    AuditEvent.reason,
    AuditEvent.prev_hash,
    AuditEvent.hash,
    AuditEvent.state,
)
# (seq, ts, actor, action, entity_type, entity_id, before, after, reason, prev_hash, hash[, state])
Row = Sequence[Any]


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _recompute(row: Row, seq: int | None = None) -> str:
    ts, actor, action, entity_type, entity_id, before, after, reason = row[1:9]
    state = row[11] if len(row) > 11 else None
    number = row[0] if seq is None else seq
    return event_hash(row[9], number, ts, actor, action, entity_type, entity_id, before, after, reason, state)


class _Lookups:
    """Targeted reads used only after a break is found, to name what went wrong."""

    def __init__(self, by_hash: Callable[[str], int | None], by_seq: Callable[[int], Row | None]):
        self.by_hash = by_hash
        self.by_seq = by_seq


def check_rows(rows: Iterable[Row], lookups: _Lookups, observe: Callable[[Row], None] | None = None) -> VerifyResult:
    """Walk the rows in seq order; ``observe`` sees every row that links up (the checkpoint checks
    ride on this one pass instead of reading the trail twice)."""
    prev_seq, prev_hash, checked = 0, GENESIS, 0
    for row in rows:
        seq, prev_link, stored = row[0], row[9], row[10]
        if seq == prev_seq + 1 and prev_link == prev_hash and _recompute(row) == stored:
            prev_seq, prev_hash, checked = seq, stored, checked + 1
            if observe is not None:
                observe(row)
            continue
        problem = _classify(row, prev_seq, prev_hash, lookups)
        return VerifyResult(checked, prev_seq, prev_hash, problem)
    return VerifyResult(checked, prev_seq, prev_hash, None)


def _classify(row: Row, prev_seq: int, prev_hash: str, look: _Lookups) -> ChainProblem:
    seq, prev_link, stored = row[0], row[9], row[10]
    expected = prev_seq + 1
    intact = _recompute(row) == stored
    nxt = look.by_seq(seq + 1)
    if seq > expected:
        missing = f"event {expected}" if seq == expected + 1 else f"events {expected} to {seq - 1}"
        return ChainProblem(expected, DELETED, f"{missing} missing: event {seq} follows event {prev_seq}")
    if prev_link == prev_hash:
        if nxt is not None and nxt[9] == prev_link:
            return ChainProblem(
                seq, INSERTED, f"event {seq} is not part of the chain: event {seq + 1} links to event {prev_seq}"
            )
        return ChainProblem(
            seq, ALTERED, f"event {seq} was changed after it was written: its content no longer matches its hash"
        )
    target = look.by_hash(prev_link)
    if target is not None and target > seq:
        return ChainProblem(
            seq, REORDERED, f"events out of order: event {seq} links to event {target}, which is stored after it"
        )
    if target is not None and target < prev_seq:
        first = target + 1
        return ChainProblem(
            first, INSERTED, f"event {first} was inserted: event {seq} links to event {target}, skipping it"
        )
    if intact:
        return ChainProblem(
            prev_seq,
            ALTERED,
            f"event {prev_seq} was changed and its hash rewritten: event {seq} no longer links to it",
        )
    if any(_recompute(row, seq + k) == stored for k in range(1, 65)):
        return ChainProblem(
            seq, DELETED, f"an event was deleted at {seq} and the events after it renumbered to close the gap"
        )
    if nxt is not None and nxt[9] == stored:
        return ChainProblem(seq, ALTERED, f"event {seq} was changed after it was written (its link field too)")
    return ChainProblem(seq, INSERTED, f"event {seq} links to no event in the trail: it was inserted")


def _stream(db: Database) -> Iterator[Row]:
    with db.guard(), db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
            select(*_COLUMNS).order_by(AuditEvent.seq)
        )
        for partition in result.partitions():
            yield from partition


def verify_chain(db: Database, observe: Callable[[Row], None] | None = None) -> VerifyResult:
    """Walk the whole trail once; O(n) time, O(1) memory."""

    def by_hash(digest: str) -> int | None:
        with db.read() as s:
            return s.execute(select(AuditEvent.seq).where(AuditEvent.hash == digest)).scalar_one_or_none()

    def by_seq(seq: int) -> Row | None:
        with db.read() as s:
            return s.execute(select(*_COLUMNS).where(AuditEvent.seq == seq)).first()

    return check_rows(_stream(db), _Lookups(by_hash, by_seq), observe)


def verify_rows(rows: Sequence[Row]) -> VerifyResult:
    """Verify a trail held in memory, such as an auditor's export, without the database."""
    by_hash = {r[10]: r[0] for r in rows}
    by_seq = {r[0]: r for r in rows}
    return check_rows(sorted(rows, key=lambda r: r[0]), _Lookups(by_hash.get, by_seq.get))
