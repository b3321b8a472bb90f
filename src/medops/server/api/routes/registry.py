"""The model registry: versions, registration, approvals and e-signatures, stages, aliases, rollback,
history, and the signed bundle.

An e-signature re-authenticates: the signer's password comes in the signing request itself and
is checked by the registry service as the CLI's is; the session or token that carried the
request never stands in for it (21 CFR Part 11, 11.200).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from medops.server.api.auth import Acting, Reading, Svc
from medops.server.api.documents import Doc
from medops.server.api.etags import immutable

router = APIRouter(prefix="/v1", tags=["registry"])
Reason = Field(None, max_length=2000, description="why: recorded in the audit trail with the change")


class Registration(BaseModel):
    run: str = Field(..., max_length=64)
    name: str = Field(..., max_length=200)
    description: str = Field("", max_length=5000)
    extra_approvals: list[str] = Field([], max_length=10, description="roles that must sign besides the policy's")
    evaluation: str | None = Field(None, max_length=64, description="default: the run's newest under the policy")
    tags: dict[str, str] = Field({}, max_length=50)
    reason: str | None = Reason


class Signing(BaseModel):
    password: str = Field(..., max_length=1024, description="the signer's password, checked again for this signature")
    role: str = Field(..., max_length=64, description="the required role signed for (the signer must hold it)")
    decision: Literal["approve", "reject"] = "approve"
    reason: str | None = Field(None, max_length=2000, description="why (required to reject)")


class Acceptance(BaseModel):
    password: str = Field(..., max_length=1024, description="the validator's password, checked again")
    reason: str = Field(..., min_length=1, max_length=2000, description="what was reviewed")


class Change(BaseModel):
    reason: str | None = Reason


class StageMove(BaseModel):
    stage: str = Field(..., max_length=20, description="staging, production or archived")
    reason: str | None = Reason


@router.get("/models")
def list_models(services: Svc, caller: Reading) -> Doc:
    """Registered models with their production and staging versions and aliases."""
    return Doc([m.to_json() for m in services.registry.models(caller)])


@router.post("/models", status_code=201)
def register(services: Svc, caller: Acting, body: Annotated[Registration, Body()]) -> Doc:
    """Register a run's model as a new version, bound to one evaluation; audited."""
    info = services.registry.register(
        caller,
        body.run,
        body.name,
        description=body.description,
        extra_approvals=body.extra_approvals,
        evaluation=body.evaluation,
        reason=body.reason,
        tags=body.tags,
    )
    return Doc(info.to_json(), status_code=201)


@router.get("/models/{ref}")
def show_model(services: Svc, caller: Reading, ref: str) -> Doc:
    """A model (NAME) with its versions, or one version (NAME:VERSION) in full."""
    return Doc(services.registry.show(caller, ref).to_json())


@router.get("/models/{name}/history")
def model_history(services: Svc, caller: Reading, name: str, at: datetime | None = None) -> Doc:
    """Every stage and alias move with who and why; with ``at``, which version held what then."""
    return Doc(services.registry.history(caller, name, at=at).to_json())


@router.get("/models/{ref}/approvals")
def approvals(services: Svc, caller: Reading, ref: str) -> Doc:
    """The signatures a version has, each verified, and the roles still missing."""
    return Doc(services.registry.approvals(caller, ref).to_json())


@router.post("/models/{ref}/approval-requests", status_code=201)
def request_approvals(services: Svc, caller: Acting, ref: str, body: Annotated[Change, Body()]) -> Doc:
    """Ask the roles a version still needs to sign; audited."""
    return Doc(services.registry.request_approvals(caller, ref, reason=body.reason).to_json(), status_code=201)


@router.post("/models/{ref}/signatures", status_code=201)
def sign(services: Svc, caller: Acting, ref: str, body: Annotated[Signing, Body()]) -> Doc:
    """Sign a version for a role (approve, or reject with a reason): the password is checked again."""
    if body.decision == "approve":
        decision = services.registry.approve(caller, ref, body.password, body.role)
    else:
        decision = services.registry.reject(caller, ref, body.password, body.role, body.reason or "")
    return Doc(decision.to_json(), status_code=201)


@router.post("/models/{ref}/evaluation-acceptance", status_code=201)
def accept_evaluation(services: Svc, caller: Acting, ref: str, body: Annotated[Acceptance, Body()]) -> Doc:
    """A validator accepts an imported version's evaluation, signed (the password is checked again)."""
    return Doc(services.registry.accept_evaluation(caller, ref, body.password, body.reason).to_json(), status_code=201)


@router.post("/models/{ref}/stage")
def promote(services: Svc, caller: Acting, ref: str, body: Annotated[StageMove, Body()]) -> Doc:
    """Move a version's stage; production needs passed gates and every signature."""
    return Doc([m.to_json() for m in services.registry.promote(caller, ref, body.stage, reason=body.reason)])


@router.post("/models/{name}/rollback")
def rollback(services: Svc, caller: Acting, name: str, body: Annotated[Change, Body()]) -> Doc:
    """Restore the previous production version in one audited step."""
    return Doc([m.to_json() for m in services.registry.rollback(caller, name, reason=body.reason)])


@router.put("/models/{ref}/aliases/{alias}")
def set_alias(services: Svc, caller: Acting, ref: str, alias: str, body: Annotated[Change, Body()]) -> Doc:
    """Point a free alias at a version (NAME:VERSION); audited."""
    return Doc(services.registry.set_alias(caller, ref, alias, reason=body.reason).to_json())


@router.delete("/models/{name}/aliases/{alias}")
def remove_alias(
    services: Svc,
    caller: Acting,
    name: str,
    alias: str,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> Doc:
    """Remove an alias; audited."""
    return Doc(services.registry.set_alias(caller, name, alias, remove=True, reason=reason).to_json())


@router.get("/models/{ref}/bundle", response_class=Response)
def bundle(request: Request, services: Svc, caller: Acting, ref: str) -> Response:
    """The version's signed bundle, verified before it is sent; the export is audited. ETag: its SHA-256."""
    with tempfile.TemporaryDirectory(prefix="medops-export-") as folder:
        path = Path(folder) / "bundle.medops"
        info = services.registry.export(caller, ref, path)
        return immutable(request, info.artifact_sha256, path.read_bytes(), "application/octet-stream")
