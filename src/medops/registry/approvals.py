"""Signed approvals of a version for production, with separation of duties.

Each role the version requires is filled by a Part 11 e-signature (password checked at
signing) whose record is the version's model name, number and artifact SHA-256: a changed
model file voids every signature on it. The signer must hold the role; the author of the
training run can't sign; one person can't fill two roles of the same version. A rejection
is signed and recorded with its reason the same way; per role, the latest decision counts.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medops.audit.trail import NewEvent
from medops.clock import utc_now
from medops.errors import InvalidInput, PermissionDenied
from medops.identity.roles import Role
from medops.platform import Platform
from medops.registry.versions import VersionInfo, get, lock_model, required_roles
from medops.store.schema import Approval
from medops.training.tracking import Tracker

log = logging.getLogger("medops.registry")

APPROVED = "approved for production"
REJECTED = "rejected for production"
ACCEPTED = "accepted the exporting workspace's evaluation"
ACCEPTANCE = "evaluation"  # the pseudo-role of an imported version's evaluation acceptance


def required(ws: Platform, version: VersionInfo) -> list[str]:
    """The roles that must sign: those recorded at registration, plus any the governing policy adds since."""
    return required_roles(ws, version.required_approvals)


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

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "username": self.username,
            "decision": self.decision,
            "signature": self.signature_id,
            "valid": self.valid,
            "problems": self.problems,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


def approve(ws: Platform, ref: tuple[str, int], username: str, password: str, role: str) -> Decision:
    return _decide(ws, ref, username, password, role, "approved", None)


def reject(ws: Platform, ref: tuple[str, int], username: str, password: str, role: str, reason: str) -> Decision:
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", code="rejection_reason_required")
    return _decide(ws, ref, username, password, role, "rejected", reason)


def _decide(
    ws: Platform, ref: tuple[str, int], username: str, password: str, role: str, decision: str, reason: str | None
) -> Decision:
    version = get(ws, *ref)
    roles = required(ws, version)
    if role not in roles:
        raise InvalidInput(
            f"{version.ref} does not require a {role} approval", hint=f"it requires: {', '.join(roles) or 'none'}"
        )
    return _sign(ws, version, username, password, role, decision, reason)


def accept_evaluation(ws: Platform, ref: tuple[str, int], username: str, password: str, reason: str) -> Decision:
    """A validator here accepts an imported version's evaluation from the exporting workspace, signed."""
    version = get(ws, *ref)
    # the role first: a caller without it learns nothing of the version's origin (refused, audited)
    ws.users.require_role(username, "model.accept_evaluation", {Role.VALIDATOR})
    if version.run_id is not None:
        raise InvalidInput(
            f"{version.ref} was trained here: its evaluation is this workspace's own",
            code="no_evaluation_on_record",
        )
    outcome = ((version.origin or {}).get("metadata") or {}).get("evaluation")
    if not outcome or not outcome.get("passed"):
        raise InvalidInput(f"{version.ref}: the exporting workspace's evaluation did not pass (or is not recorded)")
    if not reason.strip():
        raise InvalidInput("an acceptance needs a reason", code="acceptance_reason_required")
    return _sign(ws, version, username, password, ACCEPTANCE, "accepted", reason)


def _sign(
    ws: Platform, version: VersionInfo, username: str, password: str, role: str, decision: str, reason: str | None
) -> Decision:
    ref = (version.model, version.version)
    if version.stage == "archived" and decision != "rejected":  # a rejection still stops a rollback to it
        raise InvalidInput(f"{version.ref} is archived: it can't be approved for production")
    holds = Role.VALIDATOR if role == ACCEPTANCE else Role(role)
    verb = {"approved": "approve", "rejected": "reject", "accepted": "accept_evaluation"}[decision]
    standing = ws.users.require_role(username, f"model.{verb}", {holds})  # holds the role, audited
    author = author_of(ws, version)
    if standing.username == author:
        _refuse(ws, username, version, f"{username!r} trained this model: the author can't sign")
    for other in decisions(ws, ref):
        if (
            role != ACCEPTANCE
            and other.username == standing.username
            and other.role not in (role, ACCEPTANCE)
            and other.decision == "approved"
        ):
            _refuse(ws, username, version, f"{username!r} already signed as {other.role}: one person fills one role")
    meaning = {"approved": APPROVED, "rejected": f"{REJECTED}: {reason}", "accepted": f"{ACCEPTED}: {reason}"}
    signature = ws.signatures.sign(
        username,
        password,
        record_type="model_version",
        record_id=version.ref,
        record=version.record(),
        meaning=meaning[decision],
    )
    action = "model.evaluation.accepted" if role == ACCEPTANCE else f"model.{decision}"
    with ws.trail.change(username, action, "model", version.ref, reason=reason) as ch:
        lock_model(ch.session, version.model)  # serialized with promote: it sees this decision or runs after it
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


def author_of(ws: Platform, version: VersionInfo) -> str:
    """Who trained the model: the run's author here, or as the imported bundle's metadata says."""
    if version.run_id is not None:
        return Tracker(ws).get(version.run_id).created_by
    return str(((version.origin or {}).get("metadata") or {}).get("trained_by", ""))


def _refuse(ws: Platform, username: str, version: VersionInfo, why: str) -> None:
    ws.trail.record(NewEvent(username, "model.approve.denied", "model", version.ref, reason=why))
    raise PermissionDenied(f"{username!r} may not sign {version.ref}: {why}")


def decisions(ws: Platform, ref: tuple[str, int]) -> list[Decision]:
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


def awaiting(ws: Platform, roles: Collection[str]) -> list[tuple[str, int, str]]:
    """(model, version, role) for each version not archived that requires one of ``roles`` and has no valid
    decision for it: two queries, and a signature checked only where a decision for such a role exists."""
    from medops.store.schema import ModelVersion

    with ws.db.read() as session:
        rows = session.execute(
            select(ModelVersion.model, ModelVersion.version, ModelVersion.required_approvals).where(
                ModelVersion.stage != "archived"
            )
        ).all()
        wanted = {(m, v): [r for r in json.loads(req) if r in roles] for m, v, req in rows}
        wanted = {key: held for key, held in wanted.items() if held}
        decided = {
            (m, v)
            for m, v in session.execute(
                select(Approval.model, Approval.version).where(Approval.role.in_(list(roles))).distinct()
            ).all()
        }
    out = []
    for (model, version), held in sorted(wanted.items()):
        valid = {d.role for d in decisions(ws, (model, version)) if d.valid} if (model, version) in decided else set()
        out += [(model, version, role) for role in held if role not in valid]
    return out


def missing(ws: Platform, version: VersionInfo) -> list[str]:
    """Why the version's approvals do not yet allow production (empty when they do)."""
    latest = {d.role: d for d in decisions(ws, (version.model, version.version))}  # the latest per role
    problems = []
    if version.run_id is None:
        accepted = latest.get(ACCEPTANCE)
        if accepted is None:
            problems.append("no validator here has accepted the exporting workspace's evaluation")
        elif not accepted.valid:
            problems.append(f"the evaluation acceptance's signature is void: {'; '.join(accepted.problems)}")
    signers: dict[str, str] = {}
    for role in required(ws, version):
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


REQUEST_ACTION = "model.approval.request"


@dataclass(frozen=True)
class Request:
    by: str
    at: datetime
    roles: list[str]
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at.isoformat(), "roles": self.roles, "reason": self.reason}


def request(ws: Platform, ref: tuple[str, int], *, actor: str, reason: str | None = None) -> Request:
    """Ask the roles the version still needs to sign: an audited request, told to the log, that
    `approvals` shows beside the decisions (a registration made by a pipeline run makes one)."""
    from medops.registry.versions import REGISTER_ROLES

    version = get(ws, *ref)
    signed = {d.role for d in decisions(ws, ref) if d.decision == "approved" and d.valid}
    roles = [r for r in required(ws, version) if r not in signed]
    with ws.users.authorized(actor, REQUEST_ACTION, "model", version.ref, REGISTER_ROLES, reason=reason) as ch:
        ch.after = {"roles": roles}
    log.info("approval requested for %s by %s: %s", version.ref, actor, ", ".join(roles) or "nothing left to sign")
    return requests(ws, ref)[-1]


def requests(ws: Platform, ref: tuple[str, int]) -> list[Request]:
    """The approval requests made for the version, oldest first."""
    from medops.audit import AuditFilter, list_events

    version = get(ws, *ref)
    wanted = AuditFilter(entity_type="model", entity_id=version.ref, action=REQUEST_ACTION)
    found = list_events(ws.db, wanted, limit=None, newest_first=False)
    return [
        Request(e.actor, datetime.fromisoformat(e.ts), list((e.after or {}).get("roles", [])), e.reason) for e in found
    ]
