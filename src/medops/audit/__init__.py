"""The tamper-evident audit trail: hash-chained events, verification and export."""

from medops.audit.chain import GENESIS, canonical_json, event_hash
from medops.audit.query import AuditFilter, EventView, export, iter_events, list_events
from medops.audit.trail import AuditTrail, Change, NewEvent, append_events
from medops.audit.verify import ChainProblem, VerifyResult, verify_chain

__all__ = [
    "GENESIS",
    "AuditFilter",
    "AuditTrail",
    "ChainProblem",
    "Change",
    "EventView",
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
