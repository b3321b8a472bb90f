"""The serving API: FastAPI routes over the serving service, wrapped in the Guard.

``create_app`` builds it for models already loaded; ``from_environment`` is the factory each
uvicorn worker calls when `medops serve --workers N` starts several processes. Each name is served
from a slot that the registry follower (medops.serving.follow) may swap while the server runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from medops.errors import MedopsError
from medops.server.guard import Guard, Lane, ServerOptions, error_response
from medops.server.metrics import Metrics
from medops.server.predict import TABLES, add_route
from medops.server.predict import Lane as PredictLane
from medops.services import Services
from medops.serving.follow import ModelSlot
from medops.serving.models import ServedModel
from medops.serving.rollout import Rollout

if TYPE_CHECKING:
    from medops.serving.spool import Spool


log = logging.getLogger("medops.server")
CONFIG_ENV = "MEDOPS_SERVE_CONFIG"  # what `medops serve --workers N` hands each worker process


def create_app(
    services: Services,
    models: dict[str, ServedModel],
    options: ServerOptions | None = None,
    rollouts: dict[str, Rollout] | None = None,
) -> Guard:
    """The app for ``models`` (by served name); ``rollouts`` adds a canary or shadow beside some of them."""
    options = options or ServerOptions()
    metrics = Metrics()
    rollouts = {name: (rollouts or {}).get(name) or Rollout(ModelSlot.of(model)) for name, model in models.items()}
    slots = {name: rollout.champion for name, rollout in rollouts.items()}
    followed = {key: slot for name, r in rollouts.items() for key, slot in r.slots(name).items()}
    for slot in followed.values():
        metrics.served(slot.current)
    spool: Spool | None = None
    if options.prediction_log:
        from medops.serving.prediction_log import open_spool

        spool = open_spool(services.platform)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the spool first drains what a stopped server left, and at shutdown drains its own
        if spool is not None:
            await run_in_threadpool(spool.start)
        follower = services.serving.follower(followed, interval=options.follow_interval, listener=metrics)
        follower.start()  # nothing starts when every model is pinned or the interval is 0
        try:
            yield
        finally:
            await run_in_threadpool(follower.stop)
            if spool is not None:
                await run_in_threadpool(spool.close)
            services.serving.close()

    app = FastAPI(
        title="medops serving",
        version="1",
        docs_url=None,  # no interactive pages: every route but the probes needs a bearer token
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )

    @app.exception_handler(MedopsError)
    async def medops_error(request: Request, exc: MedopsError) -> Response:
        status = exc.http_status if exc.http_status < 500 else 500  # a server-side failure says no more than that
        if status == 500:  # the operator needs the cause (a medops message: no request values); the client does not
            log.error("request %s failed: %s (%s)", request.state.request_id, exc.code or type(exc).__name__, exc)
            return error_response(request.state.request_id, 500, "internal_error", "the server failed on this request")
        return error_response(request.state.request_id, status, exc.code, str(exc), exc.hint)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer repeats the value sent; this one names the parameter only
        names = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        message = f"invalid query parameter: {', '.join(names)}" if names else "invalid request"
        return error_response(
            request.state.request_id, 422, "invalid_parameter", message, "explain takes true or false"
        )

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Response:
        # the client learns only the request id; the trace goes to the server's log (the Guard logs it)
        return error_response(request.state.request_id, 500, "internal_error", "the server failed on this request")

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> JSONResponse:
        """Ready when every model served was verified at load, the metadata database (and online store) answer, and
        the prediction log keeps records."""
        database = await run_in_threadpool(services.serving.database_reachable)
        current = {n: s.current for n, s in slots.items()}
        online = await run_in_threadpool(services.serving.online_store_reachable, current)
        ready = database and bool(slots) and online is not False  # a slot always holds a verified model
        body: dict[str, Any] = {
            "ready": ready,
            "database": database,
            "models": {n: s.current.version for n, s in slots.items()},
        }
        if online is not None:
            body["online_store"] = online
        variants = {n: r.now().describe() for n, r in rollouts.items() if r.canary or r.shadow}
        if variants:
            body["variants"] = variants
        if spool is not None:  # segments waiting for the database: kept on disk, drained when it answers
            kept = {"pending_segments": spool.pending, "written": spool.stats.written, "groups": spool.stats.groups}
            body["prediction_log"] = kept | {"sync": spool.sync, "keeping": spool.keeping}
            if not spool.keeping:  # every prediction would get 503: send the traffic elsewhere
                body["ready"] = ready = False
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["probes"])
    async def prometheus() -> Response:
        """Prometheus metrics of this process."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", tags=["models"])
    async def list_models() -> dict[str, Any]:
        """The models this server answers for."""
        return {"models": [s.current.summary() for s in slots.values()]}

    @app.get("/v1/models/{name}", tags=["models"])
    async def describe(name: str) -> dict[str, Any]:
        """Version, bundle hash, input schema, threshold, and an example body predict accepts as it is."""
        model = _served(slots, name)
        rollout = rollouts[name].now()
        return {**model.describe(), "rollout": rollout.describe() if rollout.canary or rollout.shadow else None}

    for rollout in rollouts.values():
        add_route(app, services, rollout, options, metrics, spool)
    app.openapi = _openapi(app, slots)  # type: ignore[method-assign]
    lanes: dict[str, Lane] = {
        f"/v1/models/{name}/predict": PredictLane(services, rollout, options, metrics, spool)
        for name, rollout in rollouts.items()
    }

    routes = frozenset(
        {"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/models"}
        | {f"/v1/models/{n}" for n in models}
        | {f"/v1/models/{n}/predict" for n in models}
    )
    return Guard(app, services, metrics, options, routes, lanes)


def _openapi(app: FastAPI, slots: dict[str, ModelSlot]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document of the versions served now, built again after a swap (only the event loop calls it)."""
    built: dict[tuple[str, ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        current = [slot.current for slot in slots.values()]
        key = tuple(model.bundle_sha256 for model in current)
        if key not in built:
            document = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version, routes=app.routes
            )
            for model in current:
                operation = document["paths"][f"/v1/models/{model.name}/predict"]["post"]
                operation["summary"] = f"Score rows with {model.name} version {model.version}"
                operation["requestBody"] = {"required": True, "content": _body_content(model)}
            built.clear()
            built[key] = document
        return built[key]

    return openapi


def _body_content(model: ServedModel) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"application/json": {"schema": _body_schema(model)}, **{kind: binary for kind in TABLES}}


def _body_schema(model: ServedModel) -> dict[str, Any]:
    """The predict body in JSON Schema, from the bundle's input schema: one row or a list of rows."""
    properties: dict[str, Any] = {}
    for feature in model.input_schema.get("features", []):
        if feature["type"] == "number":
            spec: dict[str, Any] = {"type": "number"}
            if model.out_of_range == "reject":
                spec.update(minimum=feature["min"], maximum=feature["max"])
        elif feature["type"] == "category":
            spec = {"type": "string", "enum": list(feature["categories"])}
        else:
            spec = {}
        properties[feature["name"]] = spec if feature["required"] else {"anyOf": [spec, {"type": "null"}]}
    row = {
        "type": "object",
        "properties": properties,
        "required": [f["name"] for f in model.input_schema.get("features", []) if f["required"]],
        "additionalProperties": False,
    }
    if model.lookup is not None:  # or name the entity: the features come from the online store
        from medops.serving.lookup import entity_row_schema

        row = {"oneOf": [row, entity_row_schema(model.lookup, row)]}
    return {"oneOf": [row, {"type": "array", "items": row, "minItems": 1}]}


def _served(slots: dict[str, ModelSlot], name: str) -> ServedModel:
    from medops.errors import NotFound

    if name not in slots:
        raise NotFound(f"this server does not serve a model {name!r}", code="model_not_served", hint="GET /v1/models")
    return slots[name].current


def from_environment() -> Guard:
    """The app of one uvicorn worker: the workspace of MEDOPS_HOME, the models and options the CLI handed over."""
    from medops.workspace import Workspace

    config = json.loads(os.environ[CONFIG_ENV])
    platform = Workspace.open()
    services = Services(platform)
    models = services.serving.load(list(config["models"]))
    declared = config.get("rollout") or {}
    plan = services.serving.plan_rollouts(
        list(models), declared.get("shadow", []), declared.get("canary", []), declared.get("canary_percent", [])
    )
    return create_app(services, models, ServerOptions(**config["options"]), services.serving.rollouts(models, plan))


__all__ = ["ServerOptions", "create_app", "from_environment"]
