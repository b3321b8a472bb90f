"""Clinical evaluations: the list, one in full with its gates, and the validation report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from medops.server.api.auth import Reading, Svc
from medops.server.api.documents import Doc
from medops.server.api.etags import immutable
from medops.server.api.pages import Paging, paged

router = APIRouter(prefix="/v1", tags=["evaluations"])


@router.get("/evaluations")
def list_evaluations(
    services: Svc, caller: Reading, page: Paging, run: Annotated[str | None, Query(max_length=64)] = None
) -> Doc:
    """Evaluations, newest first (of one run, if given)."""
    return Doc(paged(services.evaluation.list(caller, run=run, limit=page.fetch), page))


@router.get("/evaluations/{ref}")
def show_evaluation(services: Svc, caller: Reading, ref: str) -> Doc:
    """One evaluation: metrics with confidence intervals, subgroups, calibration, each gate and why."""
    return Doc(services.evaluation.show(caller, ref).to_json())


@router.get("/evaluations/{ref}/report", response_class=Response)
def evaluation_report(request: Request, services: Svc, caller: Reading, ref: str) -> Response:
    """The validation report (HTML), verified against its recorded SHA-256; cached by that hash (ETag)."""
    digest, body = services.evaluation.document(caller, ref, "report")
    return immutable(request, digest, body, "text/html; charset=utf-8")


@router.get("/evaluations/{ref}/card", response_class=Response)
def model_card(
    request: Request, services: Svc, caller: Reading, ref: str, format: Literal["html", "markdown"] = "html"
) -> Response:
    """The model card, as HTML or Markdown; cached by its SHA-256 (ETag)."""
    digest, body = services.evaluation.document(caller, ref, f"card_{format}")
    media = "text/html; charset=utf-8" if format == "html" else "text/markdown; charset=utf-8"
    return immutable(request, digest, body, media)
