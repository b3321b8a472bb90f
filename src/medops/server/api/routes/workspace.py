"""The workspace's health as `medops doctor` reports it: settings (secrets redacted) and every check."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from medops.doctor import report_json, run_checks
from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc

router = APIRouter(prefix="/v1", tags=["workspace"])


@router.get("/workspace")
async def workspace_status(services: Svc, caller: Acting) -> Doc:
    """Config, database and schema, artifact store, keys, checkpoints, servers (admin); 200 with ok false
    when a check fails: the answer is the finding."""
    await run_in_threadpool(services.identity.operator, caller, "workspace.status")
    settings, checks = await run_in_threadpool(run_checks, services.platform.settings.home)
    return Doc(report_json(settings, checks))
