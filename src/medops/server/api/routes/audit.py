"""The audit trail: events filtered, the chain verified, the whole trail exported (auditor, admin)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from medops.audit import AuditFilter
from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc
from medops.server.api.pages import Paging, paged
from medops.services.audit import verification_json

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Text = Annotated[str | None, Query(max_length=200)]
Moment = Annotated[str | None, Query(max_length=40, description="ISO 8601 UTC time")]


@router.get("/events")
def audit_events(
    services: Svc,
    caller: Acting,
    page: Paging,
    entity: Annotated[str | None, Query(max_length=300, description="type, or type:id (user:alice)")] = None,
    actor: Text = None,
    action: Annotated[str | None, Query(max_length=200, description="a trailing * matches a prefix")] = None,
    since: Moment = None,
    until: Moment = None,
) -> Doc:
    """Audit events, newest first."""
    where = AuditFilter.parse(entity, actor, action, since, until)
    events = services.audit.log(caller, where, limit=page.fetch)
    return Doc(paged(events, page, lambda e: e.as_dict()))


@router.get("/verify")
def verify(services: Svc, caller: Acting, state: bool = False) -> Doc:
    """Recompute the hash chain against every signed checkpoint (with ``state``: every governed row too).
    200 with ``ok`` false when it is broken: the answer is the finding."""
    report = services.audit.verify(caller)
    rows = services.audit.verify_state(caller) if state else None
    return Doc(verification_json(report, rows))


@router.get("/export", response_class=Response)
def export(
    services: Svc,
    caller: Acting,
    format: Literal["jsonl", "csv"] = "jsonl",
    entity: Annotated[str | None, Query(max_length=300)] = None,
    actor: Text = None,
    action: Text = None,
    since: Moment = None,
    until: Moment = None,
) -> Response:
    """The trail (filtered) as JSON Lines or CSV, each event with its hashes, for an offline verifier."""
    where = AuditFilter.parse(entity, actor, action, since, until)
    spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # a trail of millions of events: on disk
    try:
        count = services.audit.export(caller, spool, format, where)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    headers = {"X-Medops-Events": str(count), "Content-Disposition": f'attachment; filename="audit.{format}"'}
    return StreamingResponse(_chunks(spool), media_type=media, headers=headers)


def _chunks(spool: IO[str]) -> Iterator[bytes]:
    with spool:
        while block := spool.read(1 << 16):
            yield block.encode()
