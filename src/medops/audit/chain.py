"""The hash chain: how one audit event is serialized and linked to the one before it.

hash_n = SHA-256(prev_hash_n || canonical(event_n)), with a fixed genesis value. The
canonical form is a compact JSON array of the event's fields in a fixed order; the
before/after documents enter as the exact text stored, which was itself produced by
canonical_json (sorted keys, UTF-8, no floats that could round differently). The hash of a
governed entity's state after the event (medops.audit.state) is the array's last field when
there is one; events without it hash as they always did, so older trails still verify.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        from medops.clock import to_iso

        return to_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} can't enter an audit record")


def _no_floats(value: Any) -> Any:
    """Floats are written as strings: their text form can differ between platforms."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _no_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_floats(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_no_floats(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_default)


def event_hash(
    prev_hash: str,
    seq: int,
    ts: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: str | None,
    after: str | None,
    reason: str | None,
    state: str | None = None,
) -> str:
    fields: list[object] = [seq, ts, actor, action, entity_type, entity_id, before, after, reason]
    if state is not None:
        fields.append(state)
    payload = json.dumps(
        fields,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + payload).encode("utf-8")).hexdigest()
