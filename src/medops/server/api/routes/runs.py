"""Training runs: search with the CLI's filters, one run in full, a metric's history, two side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from medops.server.api.auth import Reading, Svc
from medops.server.api.documents import Doc
from medops.server.api.pages import Paging, paged

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


@router.get("/runs/{run}/compare/{other}")
def compare_runs(services: Svc, caller: Reading, run: str, other: str) -> Doc:
    """Two runs side by side: parameters, metrics, data and code that differ."""
    return Doc(services.training.compare(caller, run, other).to_json())
