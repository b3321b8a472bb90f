"""Dataset versions: look them up, list them, and compare two of them.

A version is the SHA-256 of the dataset's Parquet artifact, so the same content is the
same version. Its row in the metadata store carries what was learned while making it
(schema, profile, source hashes, contract result, de-identification report) as JSON.

A dataset's current version (what ``NAME`` alone means) is the one ingested last, even when
that ingest found the content identical to an earlier version, or the one pinned with
``use``: a bad ingest is undone by ingesting the good data again, or by pinning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medops.clock import utc_now
from medops.errors import InvalidInput, NotFound
from medops.identity.roles import Role
from medops.store.database import Database, dialect_insert
from medops.store.id_prefix import is_hex, starts_with
from medops.store.lineage import dataset_node
from medops.store.schema import DatasetHead, DatasetVersion

if TYPE_CHECKING:
    from medops.platform import Platform

USE_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    version: str
    kind: str
    rows: int
    column_count: int
    size_bytes: int
    contract_result: str
    details: dict[str, Any]
    created_at: datetime
    created_by: str

    @property
    def short(self) -> str:
        return self.version[:12]

    def to_json(self) -> dict[str, Any]:
        """The summary a listing shows; ``details`` (profile, sources, reports) is added by `show`."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "rows": self.rows,
            "columns": self.column_count,
            "size_bytes": self.size_bytes,
            "contract": self.contract_result,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.short}"

    @property
    def node(self) -> str:
        return dataset_node(self.name, self.version)

    @property
    def schema(self) -> list[dict[str, str]]:
        return list(self.details.get("schema", []))

    @property
    def profile(self) -> dict[str, dict[str, Any]]:
        return dict(self.details.get("profile", {}))


def _info(row: DatasetVersion) -> DatasetInfo:
    return DatasetInfo(
        name=row.name,
        version=row.version,
        kind=row.kind,
        rows=row.rows,
        column_count=row.column_count,
        size_bytes=row.size_bytes,
        contract_result=row.contract_result,
        details=json.loads(row.details),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def list_versions(db: Database, name: str | None = None, limit: int = 100) -> list[DatasetInfo]:
    """Newest first; all datasets, or the versions of one."""
    query = select(DatasetVersion).order_by(DatasetVersion.created_at.desc(), DatasetVersion.name)
    if name:
        query = query.where(DatasetVersion.name == name)
    with db.read() as session:
        return [_info(r) for r in session.execute(query.limit(limit)).scalars()]


def get(db: Database, ref: str) -> DatasetInfo:
    """Resolve ``name`` (its newest version), ``name@version`` or ``name@<version prefix>``."""
    name, _, version = ref.strip().removeprefix("dataset:").partition("@")
    if not name:
        raise InvalidInput(f"{ref!r} is not a dataset reference", hint="use NAME or NAME@VERSION")
    query = select(DatasetVersion).where(DatasetVersion.name == name)
    if version:
        version = version.lower()
        if len(version) < 6 or not is_hex(version):
            raise InvalidInput(f"{version!r} is not a version", hint="give at least 6 hex characters of it")
        query = query.where(starts_with(DatasetVersion.version, version))
    query = query.order_by(DatasetVersion.created_at.desc()).limit(2 if version else 1)
    with db.read() as session:
        if not version:
            head = session.get(DatasetHead, name)
            if head is not None:
                query = select(DatasetVersion).where(
                    DatasetVersion.name == name, DatasetVersion.version == head.version
                )
        rows = session.execute(query).scalars().all()
        if not rows:
            raise NotFound(f"no dataset {ref!r}", code="dataset_not_found")
        if version and len(rows) > 1:
            raise InvalidInput(f"{ref!r} matches more than one version", hint="give more characters of the version")
        return _info(rows[0])


@dataclass
class ColumnChange:
    column: str
    change: str
    before: Any = None
    after: Any = None


@dataclass
class DatasetDiff:
    a: DatasetInfo
    b: DatasetInfo
    schema: list[ColumnChange] = field(default_factory=list)
    stats: list[ColumnChange] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.a.version == self.b.version


_COMPARED = ("missing_share", "distinct", "min", "max", "mean", "std", "min_length", "max_length")


def diff(a: DatasetInfo, b: DatasetInfo) -> DatasetDiff:
    """Schema changes (added, removed, retyped columns) and statistics that moved."""
    out = DatasetDiff(a, b)
    if a.rows != b.rows:
        out.stats.append(ColumnChange("(rows)", "rows", a.rows, b.rows))
    types_a = {c["name"]: c["type"] for c in a.schema}
    types_b = {c["name"]: c["type"] for c in b.schema}
    for name in types_a.keys() - types_b.keys():
        out.schema.append(ColumnChange(name, "removed", types_a[name], None))
    for name in types_b.keys() - types_a.keys():
        out.schema.append(ColumnChange(name, "added", None, types_b[name]))
    for name in types_a.keys() & types_b.keys():
        if types_a[name] != types_b[name]:
            out.schema.append(ColumnChange(name, "type", types_a[name], types_b[name]))
    out.schema.sort(key=lambda c: c.column)
    pa, pb = a.profile, b.profile
    for name in [c for c in types_a if c in types_b]:
        sa, sb = pa.get(name, {}), pb.get(name, {})
        for stat in _COMPARED:
            va, vb = sa.get(stat), sb.get(stat)
            if va != vb and not _close(va, vb):
                out.stats.append(ColumnChange(name, stat, va, vb))
        qa, qb = sa.get("quantiles", {}), sb.get("quantiles", {})
        for q in sorted(set(qa) | set(qb)):
            if not _close(qa.get(q), qb.get(q)):
                out.stats.append(ColumnChange(name, q, qa.get(q), qb.get(q)))
        ta = [v for v, _ in sa.get("top", [])]
        tb = [v for v, _ in sb.get("top", [])]
        if ta != tb:
            out.stats.append(ColumnChange(name, "top values", ta, tb))
    return out


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))
    return bool(x == y)


def quarantine_of(db: Database, info: DatasetInfo) -> DatasetInfo | None:
    """The rows of this dataset version's ingest that its contract quarantined (None: none were)."""
    with db.read() as session:
        rows = session.execute(
            select(DatasetVersion).where(
                DatasetVersion.name == f"{info.name}.quarantine", DatasetVersion.kind == "quarantine"
            )
        ).scalars()
        for row in rows:
            found = _info(row)
            if found.details.get("quarantine_of") == info.node:
                return found
    return None


def current_versions(db: Database) -> dict[str, str]:
    """Each dataset's current version: the recorded one, else (versions from before one was recorded) the newest."""
    with db.read() as session:
        newest = session.execute(
            select(DatasetVersion.name, DatasetVersion.version).order_by(DatasetVersion.created_at)
        )
        current = {name: version for name, version in newest}  # the newest wins
        current.update(
            {name: version for name, version in session.execute(select(DatasetHead.name, DatasetHead.version))}
        )
        return current


def set_head(session: Session, name: str, version: str, who: str, how: str) -> str | None:
    """Make ``version`` the current one of ``name`` in the caller's transaction; returns the one it replaces."""
    before = session.get(DatasetHead, name)
    previous = before.version if before is not None else None
    values = {"version": version, "set_by": who, "set_at": utc_now(), "how": how}
    session.execute(
        dialect_insert(session)(DatasetHead)
        .values(name=name, **values)
        .on_conflict_do_update(index_elements=["name"], set_=values)
    )
    return previous


def use(ws: Platform, ref: str, *, actor: str, reason: str | None = None) -> DatasetInfo:
    """Pin a dataset's current version (``NAME@VERSION``): audited, with the version it replaces."""
    name, _, version = ref.partition("@")
    if not version:
        raise InvalidInput(f"{ref!r} names no version", hint="give NAME@VERSION (6+ hex characters of the version)")
    info = get(ws.db, ref)
    if info.kind == "quarantine":
        raise InvalidInput(f"{info.ref} holds quarantined rows: it can't be a dataset's current version")
    with ws.users.authorized(
        actor, "dataset.use", "dataset", f"{info.name}@{info.version}", USE_ROLES, reason=reason
    ) as ch:
        previous = set_head(ch.session, info.name, info.version, actor, "use")
        ch.before = {"version": previous}
        ch.after = {"version": info.version}
    return info
