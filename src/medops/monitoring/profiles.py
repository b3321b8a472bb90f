"""Reference profiles in the workspace: built for a registered version, stored once, read back verified.

The profile is built from the version's own run (its training rows rebuilt from the recipe, its
held-out scores) and its evaluation (threshold, serving ranges, performance), and written as a
content-addressed JSON artifact with one append-only row, in a role-checked, audited change. A
version registered before monitoring existed, or whose profile was not written (a crash right
after registration), gets one with ``backfill``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medops.clock import utc_now
from medops.errors import Conflict, InvalidInput, NotFound
from medops.evaluation import records
from medops.evaluation.evaluate import test_set
from medops.identity.roles import Role
from medops.monitoring.profile import ReferenceProfile, build
from medops.platform import Platform
from medops.registry import versions
from medops.store.schema import ModelVersion, ReferenceProfileRow
from medops.training.input_schema import InputSchema
from medops.training.tracking import Tracker

PROFILE_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}


@dataclass(frozen=True)
class ProfileInfo:
    model: str
    version: int
    artifact_sha256: str
    evaluation_id: str | None
    rows: int
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "artifact_sha256": self.artifact_sha256,
            "evaluation": self.evaluation_id,
            "rows": self.rows,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def build_for_version(ws: Platform, name: str, version: int) -> tuple[ReferenceProfile, str | None]:
    """The profile of a registered version, from its run's training rows and its evaluation."""
    info = versions.get(ws, name, version)
    if info.run_id is None:
        raise InvalidInput(
            f"{name}:{version} was imported as a bundle: its training rows are not in this workspace",
            code="no_training_rows",
            hint="profile it in the workspace that trained it",
        )
    ts = test_set(Tracker(ws), info.run_id, lambda loc: ".".join(loc))
    evaluation: dict[str, Any] = {}
    if info.evaluation_id:
        evaluation = json.loads(ws.artifacts.read_bytes(records.get(ws, info.evaluation_id).document))
    threshold = float(evaluation["threshold"]["value"]) if evaluation else 0.5
    served = InputSchema.from_doc(evaluation["serving"]) if evaluation.get("serving") else ts.schema
    profile = build(ts.train_frame, list(ts.model.features), served, ts.p, threshold, evaluation)
    return profile, info.evaluation_id


def save(
    ws: Platform, name: str, version: int, profile: ReferenceProfile, evaluation_id: str | None, *, actor: str
) -> ProfileInfo:
    """Store a version's profile: once (a second is refused: the grid it fixes must never move)."""
    digest = ws.artifacts.put(json.dumps(profile.to_doc(), sort_keys=True, allow_nan=False).encode())
    entity = f"{name}:{version}"
    with ws.users.authorized(actor, "monitor.profile", "model", entity, PROFILE_ROLES) as ch:
        if ch.session.get(ModelVersion, (name, version)) is None:
            raise NotFound(f"no model version {entity}")
        if ch.session.get(ReferenceProfileRow, (name, version)) is not None:
            raise Conflict(f"{entity} already has its reference profile", code="profile_exists")
        row = ReferenceProfileRow(
            model=name,
            version=version,
            artifact_sha256=digest,
            evaluation_id=evaluation_id,
            rows=profile.rows,
            created_at=utc_now(),
            created_by=actor,
        )
        ch.session.add(row)
        ch.after = {"artifact_sha256": digest, "evaluation": evaluation_id, "rows": profile.rows}
    return get(ws, name, version)


def get(ws: Platform, name: str, version: int) -> ProfileInfo:
    with ws.db.read() as session:
        row = session.get(ReferenceProfileRow, (name, version))
        if row is None:
            raise NotFound(
                f"{name}:{version} has no reference profile",
                code="no_profile",
                hint="profile it: registration does, and older versions can be profiled afterwards",
            )
        return _info(row)


def load(ws: Platform, name: str, version: int) -> ReferenceProfile:
    """A version's stored profile, its bytes checked against their SHA-256 before they are read."""
    info = get(ws, name, version)
    return ReferenceProfile.from_doc(json.loads(ws.artifacts.read_bytes(info.artifact_sha256)))


def missing(ws: Platform) -> list[tuple[str, int]]:
    """Trained (not imported) versions without a profile, oldest first."""
    with ws.db.read() as session:
        have = {(r.model, r.version) for r in session.scalars(select(ReferenceProfileRow))}
        rows = session.scalars(
            select(ModelVersion).where(ModelVersion.run_id.is_not(None)).order_by(ModelVersion.created_at)
        )
        return [(r.model, r.version) for r in rows if (r.model, r.version) not in have]


def _info(row: ReferenceProfileRow) -> ProfileInfo:
    return ProfileInfo(
        row.model, row.version, row.artifact_sha256, row.evaluation_id, row.rows, row.created_at, row.created_by
    )
