"""Life in production: the prediction log, monitoring windows and their alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc
from medops.server.api.pages import Paging, paged
from medops.serving.prediction_log import PredictionFilter

router = APIRouter(prefix="/v1", tags=["predictions and monitoring"])
Model = Annotated[str | None, Query(max_length=200, description="NAME or NAME:VERSION")]
Moment = Annotated[str | None, Query(max_length=40, description="ISO 8601 UTC time, or how long ago (30m, 24h, 7d)")]


class Settle(BaseModel):
    # an empty reason is refused by the service, after the role check, as the CLI is refused with it
    reason: str = Field(..., max_length=2000, description="why: recorded in the audit trail (required)")


@router.get("/predictions")
def list_predictions(
    services: Svc,
    caller: Acting,
    page: Paging,
    model: Model = None,
    since: Moment = None,
    until: Moment = None,
    entity: Annotated[str | None, Query(max_length=300, description="KEY=PSEUDONYM, as logged")] = None,
    variant: Annotated[str | None, Query(max_length=20)] = None,
) -> Doc:
    """Logged predictions, newest first (auditor, validator, ml_engineer, admin); the read is audited."""
    where = PredictionFilter.parse(model, since, until, entity, variant)
    return Doc(paged(services.predictions.list(caller, where, limit=page.fetch), page))


@router.get("/predictions/{prediction_id}")
def show_prediction(services: Svc, caller: Acting, prediction_id: str) -> Doc:
    """One logged prediction: inputs (pseudonymized), output, explanation, model version and bundle."""
    return Doc(services.predictions.show(caller, prediction_id).to_json())


@router.get("/monitoring/windows")
def list_windows(services: Svc, caller: Acting, page: Paging, model: Model = None) -> Doc:
    """Monitoring windows, newest first: drift, performance and subgroup checks per model and period."""
    return Doc(paged(services.monitoring.windows(caller, model, limit=page.fetch), page))


@router.get("/monitoring/windows/{window_id}")
def show_window(services: Svc, caller: Acting, window_id: str) -> Doc:
    """One window in full: every check with its statistic, threshold and verdict (the window's stored document)."""
    return Doc(services.monitoring.show(caller, window_id)[1])


@router.get("/alerts")
def list_alerts(
    services: Svc,
    caller: Acting,
    page: Paging,
    model: Model = None,
    state: Annotated[str | None, Query(max_length=20, description="open, acknowledged or resolved")] = None,
) -> Doc:
    """Alerts, newest first."""
    return Doc(paged(services.monitoring.alerts(caller, model=model, state=state, limit=page.fetch), page))


@router.get("/alerts/{alert_id}")
def show_alert(services: Svc, caller: Acting, alert_id: str) -> Doc:
    return Doc(services.monitoring.alert(caller, alert_id).to_json())


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_alert(services: Svc, caller: Acting, alert_id: str, body: Annotated[Settle, Body()]) -> Doc:
    """Acknowledge an alert: someone is on it; audited."""
    return Doc(services.monitoring.acknowledge(caller, alert_id, body.reason).to_json())


@router.post("/alerts/{alert_id}/resolve")
def resolve_alert(services: Svc, caller: Acting, alert_id: str, body: Annotated[Settle, Body()]) -> Doc:
    """Resolve an alert with what was done; audited."""
    return Doc(services.monitoring.resolve(caller, alert_id, body.reason).to_json())
