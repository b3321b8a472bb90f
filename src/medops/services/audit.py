"""Reading, verifying and exporting the audit trail: who may, and the export itself audited."""

from __future__ import annotations

from typing import IO

from medops.audit import AuditFilter, NewEvent, export, list_events
from medops.audit.checkpoint import TrailCheck
from medops.audit.query import EventView
from medops.audit.state_check import StateCheck, check_state
from medops.caller import Caller
from medops.identity import Role
from medops.platform import Platform

EXPORT_ROLES = {Role.AUDITOR, Role.ADMIN}


class AuditService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def log(self, caller: Caller, flt: AuditFilter, *, limit: int = 50) -> list[EventView]:
        """Events newest first; any role may read the trail, a denied read is itself audited."""
        self.platform.users.require_role(caller.user, "audit.read", set(Role))
        return list_events(self.platform.db, flt, limit=limit)

    def verify(self, caller: Caller, *, write_checkpoint: bool = True) -> TrailCheck:
        self.platform.users.require_role(caller.user, "audit.verify", set(Role))
        return self.platform.verify_audit(write_checkpoint=write_checkpoint)

    def verify_state(self, caller: Caller) -> StateCheck:
        """Every governed row (users and roles, tokens, models with stages and approvals, evaluations,
        trusted keys) against the state its latest audit event recorded."""
        self.platform.users.require_role(caller.user, "audit.verify", set(Role))
        return check_state(self.platform.db)

    def export(self, caller: Caller, out: IO[str], fmt: str, flt: AuditFilter) -> int:
        """Auditors and admins export; the export is recorded with its filter and size.

        The event is recorded after the rows are written, outside the read, so a long export
        never holds the database's write lock.
        """
        self.platform.users.require_role(caller.user, "audit.export", EXPORT_ROLES)
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
