"""Signed approvals of a version for production, with separation of duties.

Each role the version requires is filled by a Part 11 e-signature (password checked at
signing) whose record is the version's model name, number and artifact SHA-256: a changed
model file voids every signature on it. The signer must hold the role; the author of the
training run can't sign; one person can't fill two roles of the same version. A rejection
is signed and recorded with its reason the same way; per role, the latest decision counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from medops.audit.trail import NewEvent
from medops.clock import utc_now
from medops.errors import InvalidInput, PermissionDenied
from medops.identity.roles import Role
from medops.registry.versions import VersionInfo, get
from medops.store.schema import Approval
from medops.training.tracking import Tracker
from medops.workspace import Workspace

APPROVED = "approved for production"
REJECTED = "rejected for production"


@dataclass(frozen=True)
class Decision:
    role: str
    username: str
    decision: str  # approved or rejected
    signature_id: str
    reason: str | None
    at: datetime
    valid: bool  # the signature verifies against the version as it is now
    problems: list[str]


def approve(ws: Workspace, ref: tuple[str, int], username: str, password: str, role: str) -> Decision:
    return _decide(ws, ref, username, password, role, "approved", None)


def reject(ws: Workspace, ref: tuple[str, int], username: str, password: str, role: str, reason: str) -> Decision:
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", hint="give --reason '...': it is recorded with the decision")
    return _decide(ws, ref, username, password, role, "rejected", reason)


def _decide(
    ws: Workspace, ref: tuple[str, int], username: str, password: str, role: str, decision: str, reason: str | None
) -> Decision:
    version = get(ws, *ref)
    if role not in version.required_approvals:
        raise InvalidInput(
            f"{version.ref} does not require a {role} approval",
            hint=f"it requires: {', '.join(version.required_approvals) or 'none'}",
        )
    if version.stage == "archived":
        raise InvalidInput(f"{version.ref} is archived: it can't be approved for production")
    standing = ws.users.require_role(username, f"model.{decision[:-1]}", {Role(role)})  # holds the role, audited
    author = author_of(ws, version)
    if standing.username == author:
        _refuse(ws, username, version, f"{username!r} trained this model: the author can't sign")
    for other in decisions(ws, ref):
        if other.username == standing.username and other.role != role and other.decision == "approved":
            _refuse(ws, username, version, f"{username!r} already signed as {other.role}: one person fills one role")
    signature = ws.signatures.sign(
        username,
        password,
        record_type="model_version",
        record_id=version.ref,
        record=version.record(),
        meaning=APPROVED if decision == "approved" else f"{REJECTED}: {reason}",
    )
    with ws.trail.change(username, f"model.{decision}", "model", version.ref, reason=reason) as ch:
        ch.session.add(
            Approval(
                id=uuid.uuid4().hex,
                model=version.model,
                version=version.version,
                role=role,
                username=standing.username,
                decision=decision,
                signature_id=signature.id,
                reason=reason,
                at=utc_now(),
            )
        )
        ch.after = {"role": role, "decision": decision, "signature": signature.id}
    return next(d for d in decisions(ws, ref) if d.signature_id == signature.id)


def author_of(ws: Workspace, version: VersionInfo) -> str:
    """Who trained the model: the run's author here, or as the imported bundle's metadata says."""
    if version.run_id is not None:
        return Tracker(ws).get(version.run_id).created_by
    return str(((version.origin or {}).get("metadata") or {}).get("trained_by", ""))


def _refuse(ws: Workspace, username: str, version: VersionInfo, why: str) -> None:
    ws.trail.record(NewEvent(username, "model.approve.denied", "model", version.ref, reason=why))
    raise PermissionDenied(f"{username!r} may not sign {version.ref}: {why}")


def decisions(ws: Workspace, ref: tuple[str, int]) -> list[Decision]:
    """Every decision on the version, oldest first, each with whether its signature still holds."""
    version = get(ws, *ref)
    with ws.db.read() as session:
        rows = session.execute(
            select(Approval)
            .where(Approval.model == version.model, Approval.version == version.version)
            .order_by(Approval.at, Approval.id)
        ).scalars()
        found = [(r.role, r.username, r.decision, r.signature_id, r.reason, r.at) for r in rows]
    out = []
    for role, user, decision, signature_id, reason, at in found:
        check = ws.signatures.verify(signature_id, version.record(), record_type="model_version", record_id=version.ref)
        out.append(Decision(role, user, decision, signature_id, reason, at, check.valid, list(check.problems)))
    return out


def missing(ws: Workspace, version: VersionInfo) -> list[str]:
    """Why the version's approvals do not yet allow production (empty when they do)."""
    latest = {d.role: d for d in decisions(ws, (version.model, version.version))}  # the latest per role
    problems = []
    signers: dict[str, str] = {}
    for role in version.required_approvals:
        d: Decision | None = latest.get(role)
        if d is None:
            problems.append(f"no {role} approval")
        elif d.decision != "approved":
            problems.append(f"{role} rejected it ({d.reason})")
        elif not d.valid:
            problems.append(f"the {role} signature is void: {'; '.join(d.problems)}")
        elif d.username in signers:
            problems.append(f"{d.username!r} signed as both {signers[d.username]} and {role}")
        else:
            signers[d.username] = role
    return problems
