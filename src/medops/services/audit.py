"""Reading, verifying and exporting the audit trail: who may, and the export itself audited."""

from __future__ import annotations

from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medops.audit import AuditFilter, NewEvent, export, list_events
from medops.audit.anchoring import TrailCheck
from medops.audit.query import EventView
from medops.audit.state_check import StateCheck, check_state
from medops.audit.verify import ChainProblem
from medops.caller import Caller
from medops.errors import Conflict, IntegrityError, InvalidInput
from medops.identity import Role
from medops.identity.roles import READ_ROLES
from medops.platform import Platform

EXPORT_ROLES = {Role.AUDITOR, Role.ADMIN}


class AuditService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def log(self, caller: Caller, flt: AuditFilter, *, limit: int = 50) -> list[EventView]:
        """Events newest first; every role but a prediction token's reads the trail, a denied read is audited."""
        self.platform.users.require_role(caller.user, "audit.read", set(READ_ROLES))
        return list_events(self.platform.db, flt, limit=limit)

    def verify(self, caller: Caller, *, public_key: Ed25519PublicKey | None = None) -> TrailCheck:
        """Check the chain against the published checkpoints; reads only.

        ``public_key`` is the workspace key the verifier trusts (given out of band, never read from
        the database); by default the one derived from the workspace's signing key.
        """
        self.platform.users.require_role(caller.user, "audit.verify", set(READ_ROLES))
        return self.platform.verify_audit(public_key)

    def verify_state(self, caller: Caller) -> StateCheck:
        """Every governed row (users and roles, tokens, models with stages and approvals, evaluations,
        trusted keys) against the state its latest audit event recorded."""
        self.platform.users.require_role(caller.user, "audit.verify", set(READ_ROLES))
        return check_state(self.platform.db)

    def export(self, caller: Caller, out: IO[str], fmt: str, flt: AuditFilter) -> int:
        """Auditors and admins export; the export is recorded with its filter and size.

        The event is recorded after the rows are written, outside the read, so a long export
        never holds the database's write lock.
        """
        self.platform.users.require_role(caller.user, "audit.export", EXPORT_ROLES)
        self.platform.trail.require_anchor()  # the export is recorded: refuse before writing any of it
        count = export(self.platform.db, out, fmt, flt)
        self.platform.trail.record(
            NewEvent(
                caller.user,
                "audit.export",
                "audit_trail",
                "-",
                after={"format": fmt, "events": count, "filter": str(flt)},
            )
        )
        return count

    def anchor(self, caller: Caller, reason: str) -> int:
        """Anchor a trail written before checkpoints were published per batch (an admin, once).

        The chain must verify; the checkpoint store must hold none of this workspace's
        checkpoints yet. The event recorded says who anchored it, why and up to which event;
        its checkpoint covers the whole trail from event 1.
        """
        self.platform.users.require_role(caller.user, "audit.anchor", {Role.ADMIN})
        if not reason.strip():
            raise InvalidInput("anchoring the audit trail needs a reason", code="reason_required")
        check = self.platform.verify_audit()
        if check.checkpoints:
            raise Conflict(
                f"the audit trail is anchored already ({check.checkpoints} checkpoints, the newest at event "
                f"{check.anchored_at}); only a trail without any checkpoint is anchored this way"
            )
        if not check.chain.ok:
            assert check.chain.problem is not None
            raise IntegrityError(
                f"the chain is broken at event {check.chain.problem.seq}: it can't be anchored",
                hint="see what broke it by verifying the trail, and restore the database from a verified backup",
            )
        return self.platform.trail.adopt(
            NewEvent(
                caller.user,
                "audit.anchor",
                "audit_trail",
                "-",
                after={"through": check.chain.head_seq, "head": check.chain.head_hash},
                reason=reason,
            )
        )


def verification_json(report: TrailCheck, rows: StateCheck | None) -> dict[str, Any]:
    """A verification as `medops audit verify --json` and the API give it."""
    chain = report.chain
    return {
        "ok": report.ok and (rows is None or rows.ok),
        "chain_ok": chain.ok,  # whether the events link up, whatever the checkpoints say
        "state": None if rows is None else rows.to_json(),
        "checked": chain.checked,
        "head_seq": chain.head_seq,
        "head_hash": chain.head_hash,
        "checkpoints": report.checkpoints,
        "anchored_at": report.anchored_at,
        "pending": list(report.pending) if report.pending else None,
        "timestamps": report.timestamps,
        "problem": _problem_json(report.problem),
        "problems": [_problem_json(p) for p in report.problems],
        "warnings": report.warnings,
    }


def _problem_json(problem: ChainProblem | None) -> dict[str, object] | None:
    return None if problem is None else {"seq": problem.seq, "kind": problem.kind, "detail": problem.detail}
