"""Pipeline runs: what ran, why (manual, schedule, alert), each step's decision and output."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc
from medops.server.api.pages import Paging, paged

router = APIRouter(prefix="/v1", tags=["pipelines"])


@router.get("/pipelines/runs")
def list_pipeline_runs(
    services: Svc, caller: Acting, page: Paging, project: Annotated[str | None, Query(max_length=200)] = None
) -> Doc:
    """Pipeline runs, newest first."""
    return Doc(paged(services.pipelines.runs(caller, project, limit=page.fetch), page))


@router.get("/pipelines/runs/{ref}")
def show_pipeline_run(services: Svc, caller: Acting, ref: str) -> Doc:
    """One pipeline run with each step's decision, time and outputs."""
    return Doc(services.pipelines.show(caller, ref).to_json())
