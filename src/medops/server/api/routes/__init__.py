"""One router per capability; each route parses, calls one service operation with the caller, and
returns the result's ``to_json()``."""

from __future__ import annotations

from fastapi import APIRouter

from medops.server.api.routes import (
    audit,
    data,
    evaluations,
    evidence,
    identity,
    monitoring,
    pipelines,
    registry,
    runs,
    workspace,
)

ROUTERS: list[APIRouter] = [
    workspace.router,
    identity.router,
    data.router,
    runs.router,
    evaluations.router,
    registry.router,
    monitoring.router,
    pipelines.router,
    audit.router,
    evidence.router,
]
