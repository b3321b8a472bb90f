"""The tamper-evident audit trail: hash-chained events, verification and export.

Members load on first use, so importing one light module (the chain's hashing, say) does not
pull in the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medops.lazy import members

if TYPE_CHECKING:
    from medops.audit.chain import GENESIS, canonical_json, event_hash
    from medops.audit.query import AuditFilter, EventView, export, iter_events, list_events
    from medops.audit.trail import AuditTrail, Change, NewEvent, append_events
    from medops.audit.verify import ChainProblem, VerifyResult, verify_chain

__all__ = [
    "AuditFilter",
    "AuditTrail",
    "ChainProblem",
    "Change",
    "EventView",
    "GENESIS",
    "NewEvent",
    "VerifyResult",
    "append_events",
    "canonical_json",
    "event_hash",
    "export",
    "iter_events",
    "list_events",
    "verify_chain",
]
_HOMES = {
    "GENESIS": "chain",
    "canonical_json": "chain",
    "event_hash": "chain",
    "AuditFilter": "query",
    "EventView": "query",
    "export": "query",
    "iter_events": "query",
    "list_events": "query",
    "AuditTrail": "trail",
    "Change": "trail",
    "NewEvent": "trail",
    "append_events": "trail",
    "ChainProblem": "verify",
    "VerifyResult": "verify",
    "verify_chain": "verify",
}

__getattr__ = members(__name__, _HOMES)
