"""Reading the audit trail: filtered listings and full exports for auditors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, or_, select

from medops.clock import parse_iso, to_iso
from medops.csv_cells import neutralize, restore
from medops.errors import InvalidInput
from medops.store.database import Database
from medops.store.schema import AuditEvent

EXPORT_FIELDS = (
    "seq",
    "ts",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "reason",
    "prev_hash",
    "hash",
    "state",
)


@dataclass(frozen=True)
class AuditFilter:
    entity_type: str | None = None
    entity_id: str | None = None
    entity_family: str | None = None  # the id itself and its versions (``labs`` and ``labs@3``)
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    below: int | None = None  # events older than this sequence number: the next page of a newest-first list

    @classmethod
    def parse(
        cls,
        entity: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AuditFilter:
        """The filter as a person gives it: entity as type or type:id, times as ISO 8601."""
        kind, ident = cls.parse_entity(entity)
        return cls(
            entity_type=kind,
            entity_id=ident,
            actor=actor,
            action=action,
            since=parse_iso(since) if since else None,
            until=parse_iso(until) if until else None,
        )

    @classmethod
    def parse_entity(cls, entity: str | None) -> tuple[str | None, str | None]:
        """`user` or `user:alice` -> (type, id)."""
        if not entity:
            return None, None
        kind, _, ident = entity.partition(":")
        if not kind:
            raise InvalidInput(f"entity filter {entity!r} needs a type, e.g. user or user:alice")
        return kind, ident or None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.entity_type:
            query = query.where(AuditEvent.entity_type == self.entity_type)
        if self.entity_id:
            query = query.where(AuditEvent.entity_id == self.entity_id)
        if self.entity_family:
            query = query.where(
                or_(
                    AuditEvent.entity_id == self.entity_family,
                    AuditEvent.entity_id.startswith(f"{self.entity_family}@", autoescape=True),
                )
            )
        if self.actor:
            query = query.where(AuditEvent.actor == self.actor)
        if self.action:
            if self.action.endswith("*"):
                query = query.where(AuditEvent.action.startswith(self.action[:-1], autoescape=True))
            else:
                query = query.where(AuditEvent.action == self.action)
        if self.since:
            query = query.where(AuditEvent.ts >= to_iso(self.since))
        if self.until:
            query = query.where(AuditEvent.ts <= to_iso(self.until))
        if self.below is not None:
            query = query.where(AuditEvent.seq < self.below)
        return query


@dataclass(frozen=True)
class EventView:
    seq: int
    ts: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: Any
    after: Any
    reason: str | None
    prev_hash: str
    hash: str
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(row: AuditEvent) -> EventView:
    return EventView(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        before=json.loads(row.before) if row.before else None,
        after=json.loads(row.after) if row.after else None,
        reason=row.reason,
        prev_hash=row.prev_hash,
        hash=row.hash,
        state=row.state,
    )


def list_events(
    db: Database, flt: AuditFilter, *, limit: int | None = 100, newest_first: bool = True
) -> list[EventView]:
    query = flt.apply(select(AuditEvent))
    query = query.order_by(AuditEvent.seq.desc() if newest_first else AuditEvent.seq)
    if limit is not None:
        query = query.limit(limit)
    with db.read() as session:
        return [_view(r) for r in session.scalars(query)]


def iter_events(db: Database, flt: AuditFilter | None = None) -> Iterator[EventView]:
    """Every matching event in sequence order, streamed so an export never holds them all."""
    query = (flt or AuditFilter()).apply(select(AuditEvent)).order_by(AuditEvent.seq)
    with db.read() as session:
        for row in session.scalars(query.execution_options(yield_per=5000)):
            yield _view(row)


def export_format(fmt: str) -> str:
    """``fmt`` if it is a format the trail exports to; a client checks it before asking for the export."""
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"export format {fmt!r} is not known", hint="use jsonl or csv")
    return fmt


def export(db: Database, out: IO[str], fmt: str, flt: AuditFilter | None = None) -> int:
    """Write the trail as JSON Lines or CSV with every field needed to re-verify it.

    CSV text cells that a spreadsheet would run as a formula get a leading ``'``
    (medops.csv_cells); reading the export back removes it before the chain is checked.
    """
    export_format(fmt)
    count = 0
    with db.read() as session:
        query = (flt or AuditFilter()).apply(select(AuditEvent)).order_by(AuditEvent.seq)
        rows = session.scalars(query.execution_options(yield_per=5000))
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps({f: getattr(row, f) for f in EXPORT_FIELDS}, ensure_ascii=False) + "\n")
                count += 1
        else:
            writer = csv.writer(out)
            writer.writerow(EXPORT_FIELDS)
            for row in rows:
                writer.writerow([_csv_cell(getattr(row, f)) for f in EXPORT_FIELDS])
                count += 1
    return count


def _csv_cell(value: Any) -> Any:
    """Text cells can't run as spreadsheet formulas; ``read_export`` undoes this, so the export still verifies."""
    if value is None:
        return ""
    return neutralize(value) if isinstance(value, str) else value


def read_export(path: Path) -> list[tuple[Any, ...]]:
    """Rows of a JSONL or CSV export, in the field order the verifier expects."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if path.suffix == ".csv":
                reader = csv.DictReader(handle)
                records: list[dict[str, Any]] = []
                for row in reader:
                    if None in row or None in row.values():
                        raise ValueError(
                            f"line {reader.line_num} has {len(row) + len(row.get(None) or []) - 1} "
                            f"fields, expected {len(EXPORT_FIELDS)}"
                        )
                    records.append({k: (restore(v) if v != "" else None) for k, v in row.items()})
            else:
                records = [json.loads(line) for line in handle if line.strip()]
        # Exports made before state hashing have no state column: those events hash without it.
        return [tuple(int(r["seq"]) if f == "seq" else r.get(f) for f in EXPORT_FIELDS) for r in records]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a medops audit export: {exc}") from exc
