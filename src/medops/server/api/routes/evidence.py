"""Evidence for auditors over the API: one prediction's or one model version's, as the JSON document or
its self-contained page (auditors and admins; each export is audited). The signed package is written
where the workspace key is, with `medops evidence ... --out` on the workspace's host."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])
Format = Annotated[Literal["json", "html"], Query(description="json: the document; html: the page a person reads")]


@router.get("/predictions/{prediction_id}", response_model=None)
async def prediction_evidence(
    services: Svc,
    caller: Acting,
    prediction_id: Annotated[str, Path(max_length=64)],
    format: Format = "json",
) -> Doc | Response:
    """The model version and bundle that made the prediction, the signatures and evaluation it was released
    on, its training and data back to the source files, the audit excerpt with the chain verified, a replay."""
    evidence = await run_in_threadpool(services.evidence.prediction, caller, prediction_id)
    return _answer(evidence.document, format)


@router.get("/models/{ref}", response_model=None)
async def model_evidence(
    services: Svc, caller: Acting, ref: Annotated[str, Path(max_length=200)], format: Format = "json"
) -> Doc | Response:
    """A version's release file: intended use, lineage, validation, approvals, life in production, changes
    against the version it replaced, the EU AI Act Annex IV outline."""
    evidence = await run_in_threadpool(services.evidence.model, caller, ref)
    return _answer(evidence.document, format)


def _answer(document: dict[str, object], format: str) -> Doc | Response:
    if format == "html":
        from medops.evidence import render

        return HTMLResponse(render.html(document), headers={"Cache-Control": "no-store"})
    return Doc(document)
