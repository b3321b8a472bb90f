"""Datasets (versions, one in full, diffs, the current version), their lineage, and feature views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from medops.server.api.auth import Acting, Reading, Svc
from medops.server.api.documents import Doc
from medops.server.api.pages import Paging, paged

router = APIRouter(prefix="/v1", tags=["data"])
Name = Annotated[str | None, Query(max_length=200, description="only this dataset")]


class Use(BaseModel):
    reason: str | None = Field(None, max_length=2000)


@router.get("/project")
def show_project(services: Svc, caller: Reading) -> Doc:
    """The workspace's reviewed project file: purpose, population, sources with their contracts and
    de-identification rules, and its SHA-256 (evaluations made under another file are exploratory)."""
    return Doc(services.data.project(caller))


@router.get("/datasets")
def list_datasets(services: Svc, caller: Reading, page: Paging, name: Name = None) -> Doc:
    """Dataset versions, newest first; ``current`` marks what NAME alone means."""
    return Doc(paged(services.data.versions(caller, name, page.fetch), page))


@router.get("/datasets/{ref}")
def show_dataset(services: Svc, caller: Reading, ref: str) -> Doc:
    """One version in full (NAME for the current one, or NAME@VERSION): schema, statistics, sources."""
    return Doc(services.data.show(caller, ref).to_json())


@router.get("/datasets/{ref}/diff/{other}")
def diff_datasets(services: Svc, caller: Reading, ref: str, other: str) -> Doc:
    """What changed from one version to another: schema and statistics."""
    return Doc(services.data.diff(caller, ref, other).to_json())


@router.post("/datasets/{ref}/use")
def use_dataset(services: Svc, caller: Acting, ref: str, body: Annotated[Use, Body()]) -> Doc:
    """Make NAME@VERSION what NAME means; audited."""
    return Doc(services.data.use(caller, ref, reason=body.reason).to_json())


@router.get("/lineage/{entity}")
def lineage(services: Svc, caller: Reading, entity: str, up: bool = True, down: bool = True) -> Doc:
    """What fed an entity (model version NAME:VERSION, dataset, node id or prefix) and what it fed."""
    return Doc(services.lineage.show(caller, entity, up=up, down=down).to_json())


@router.get("/features/{view}")
def show_feature_view(services: Svc, caller: Reading, view: str) -> Doc:
    """A feature view: its versions, features, entity and freshness."""
    return Doc(services.features.show(caller, view).to_json())
