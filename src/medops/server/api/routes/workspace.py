"""The workspace's health as `medops doctor` reports it: settings (secrets redacted) and every check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from medops.credentials import Credential
from medops.doctor import report_json, run_checks
from medops.server.api.auth import Acting, Svc, presented
from medops.server.api.documents import Doc

router = APIRouter(prefix="/v1", tags=["workspace"])


@router.get("/workspace")
async def workspace_status(request: Request, services: Svc, caller: Acting) -> Doc:
    """Config, database and schema, artifact store, keys, checkpoints, servers, who the request acts as (admin);
    200 with ok false when a check fails: the answer is the finding."""
    await run_in_threadpool(services.identity.operator, caller, "workspace.status")
    found = presented(request)
    assert found is not None  # acting refused a request without one
    # the acting-user check as the CLI's doctor words it: a client's API token comes from MEDOPS_TOKEN
    bearer = Credential(found[0], "env")
    settings, checks = await run_in_threadpool(
        run_checks, services.platform.settings.home, credential=lambda _settings: bearer
    )
    return Doc(report_json(settings, checks))
