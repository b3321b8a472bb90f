"""Training runs: search with the CLI's filters, one run in full, a metric's history, a logged file, a comparison."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from medops.clock import utc_now
from medops.server.api.auth import Acting, Reading, Svc
from medops.server.api.documents import Doc
from medops.server.api.etags import immutable
from medops.server.api.pages import Paging, paged

if TYPE_CHECKING:
    from medops.training.tracking import Ending

router = APIRouter(prefix="/v1", tags=["runs"])


@router.get("/runs")
def search_runs(
    services: Svc,
    caller: Reading,
    page: Paging,
    experiment: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[str | None, Query(max_length=20, description="running, finished, failed or killed")] = None,
    tag: Annotated[list[str], Query(max_length=20, description="KEY=VALUE; repeat to require several")] = [],  # noqa: B006
    metric: Annotated[list[str], Query(max_length=20, description="METRIC<op>NUMBER: >, >=, <, <=, =, !=")] = [],  # noqa: B006
    trials: bool = False,
) -> Doc:
    """Runs, newest first, filtered in the database as `medops runs list` filters them."""
    from medops.key_values import key_values
    from medops.training import MetricFilter

    found = services.training.runs(
        caller,
        experiment=experiment,
        state=state,
        tags={k: v[-1] for k, v in key_values(tag, "tag", "model=lgbm").items()},
        metrics=[MetricFilter.parse(m) for m in metric],
        trials=trials,
        limit=page.fetch,
    )
    return Doc(paged(found, page))


@router.get("/runs/{run}")
def show_run(services: Svc, caller: Reading, run: str) -> Doc:
    """One run in full: parameters, metrics, tags, artifacts, environment, data."""
    return Doc(services.training.show(caller, run).to_json())


@router.get("/runs/{run}/metrics/{key}")
def metric_history(services: Svc, caller: Reading, run: str, key: str) -> Doc:
    """Every value a run logged for one metric, by step."""
    return Doc(services.training.metric_history(caller, run, key))


@router.get("/runs/{run}/artifacts/{path:path}", response_class=Response)
def run_artifact(request: Request, services: Svc, caller: Reading, run: str, path: str) -> Response:
    """A file the run logged, checked against its recorded SHA-256 before it is sent; that hash is its ETag."""
    found = services.training.artifact(caller, run, path)
    return immutable(request, found.sha256, found.data, "application/octet-stream")


@router.get("/runs/{run}/compare/{other}")
def compare_runs(services: Svc, caller: Reading, run: str, other: str) -> Doc:
    """Two runs side by side: parameters, metrics, data and code that differ."""
    return Doc(services.training.compare(caller, run, other).to_json())


class Metric(BaseModel):
    key: str = Field(..., max_length=250)
    value: float = Field(..., allow_inf_nan=False)
    step: int = Field(0, ge=0)
    at: datetime | None = Field(None, description="when the client logged it (default: when the server got it)")


class Batch(BaseModel):
    params: dict[str, str] = Field({}, max_length=10_000)
    tags: dict[str, str] = Field({}, max_length=10_000)
    metrics: list[Metric] = Field([], max_length=50_000)


class End(Batch):
    """The end, with the run's last values (the client's buffer) in the same transaction."""

    state: Literal["finished", "failed", "killed"] = "finished"
    error: str | None = Field(None, max_length=4000)
    git_commit: str | None = Field(None, max_length=64)
    git_dirty: bool | None = None


class NewRun(BaseModel):
    experiment: str = Field(..., max_length=200)
    name: str | None = Field(None, max_length=200)
    seed: int | None = None
    parent: str | None = Field(None, max_length=64, description="the parent run (a tuning trial's)")
    environment: str | None = Field(None, max_length=1_000_000, description="the client's environment lock")
    host: str | None = Field(None, max_length=255)
    id: str | None = Field(None, pattern="^[0-9a-f]{32}$", description="the run's id, made by the client (uuid4 hex)")
    elapsed: float = Field(
        0.0, ge=0, description="seconds since the run began, by the client's monotonic clock (a run opened late)"
    )
    end: End | None = Field(None, description="the run's end and its values: a short run recorded whole, at once")


@router.post("/runs", status_code=201)
def start_run(services: Svc, caller: Acting, body: Annotated[NewRun, Body()]) -> Doc:
    """Open a run logged from a client (`medops.start_run` with MEDOPS_SERVER_URL); audited as run.start.
    With ``end``, the whole run at once, in one transaction: run.start, then run.STATE."""
    run = services.training.start_run(
        caller,
        body.experiment,
        body.name,
        seed=body.seed,
        parent=body.parent,
        environment=body.environment,
        host=body.host,
        run_id=body.id,
        elapsed=body.elapsed,
        ending=_ending(body.end) if body.end is not None else None,
    )
    return Doc(run.to_json(), status_code=201)


@router.post("/runs/{run}/log")
def log_to_run(services: Svc, caller: Acting, run: str, body: Annotated[Batch, Body()]) -> Doc:
    """Parameters, tags and metric values of your running run, in one transaction (batch them)."""
    metrics = _metrics(body)
    logged = services.training.log(caller, run, params=body.params, tags=body.tags, metrics=metrics)
    return Doc({"run": run, "logged": logged})


@router.post("/runs/{run}/heartbeat")
def heartbeat(services: Svc, caller: Acting, run: str) -> Doc:
    """Your running run is alive (a run without a heartbeat for a while is marked killed)."""
    services.training.heartbeat(caller, run)
    return Doc({"run": run, "state": "running"})


@router.post("/runs/{run}/end")
def end_run(services: Svc, caller: Acting, run: str, body: Annotated[End, Body()]) -> Doc:
    """End your run: finished, failed (with the error) or killed, with its last values; audited."""
    return Doc(services.training.end_run(caller, run, _ending(body)).to_json())


def _ending(end: End) -> Ending:
    """A run's end as the client sent it: with its start (a run recorded whole) or on its own."""
    from medops.training.environment import GitState
    from medops.training.tracking import Ending

    return Ending.of(
        end.state, end.error, GitState(end.git_commit, end.git_dirty), (end.params, end.tags, _metrics(end))
    )


def _metrics(body: Batch) -> list[tuple[str, int, float, datetime]]:
    now = utc_now()
    return [(m.key, m.step, m.value, m.at or now) for m in body.metrics]
