"""The serving API: FastAPI routes over the serving service, wrapped in the Guard.

``create_app`` builds it for models already loaded; ``from_environment`` is the factory each
uvicorn worker calls when `medops serve --workers N` starts several processes. Each name is served
from a slot that the registry follower (medops.serving.follow) may swap while the server runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from medops.errors import MedopsError
from medops.server.guard import Guard, ServerOptions, error_body
from medops.server.metrics import Metrics
from medops.services import Services
from medops.serving.follow import ModelSlot
from medops.serving.models import ServedModel
from medops.serving.rollout import Rollout
from medops.serving.validation import MAX_LISTED, RowsInvalid

if TYPE_CHECKING:
    from medops.caller import Caller
    from medops.services.serving import Scored
    from medops.serving.spool import Spool


def _arrow_stream(body: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.BufferReader(body)).read_all()


def _parquet(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(body))


# batch bodies besides JSON: a table whose columns are the model's features
TABLES = {"application/vnd.apache.arrow.stream": _arrow_stream, "application/vnd.apache.parquet": _parquet}

log = logging.getLogger("medops.server")
INLINE_ROWS = 32  # requests up to this many rows are scored on the event loop (no online-store read, no explanation)
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
    async def medops_error(request: Request, exc: MedopsError) -> JSONResponse:
        status = exc.http_status if exc.http_status < 500 else 500  # a server-side failure says no more than that
        if status == 500:  # the operator needs the cause (a medops message: no request values); the client does not
            log.error("request %s failed: %s (%s)", request.state.request_id, exc.code or type(exc).__name__, exc)
            return _error(request, 500, "internal_error", "the server failed on this request")
        return _error(request, status, exc.code, str(exc), exc.hint)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer repeats the value sent; this one names the parameter only
        names = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        message = f"invalid query parameter: {', '.join(names)}" if names else "invalid request"
        return _error(request, 422, "invalid_parameter", message, "explain takes true or false")

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        # the client learns only the request id; the trace goes to the server's log (the Guard logs it)
        return _error(request, 500, "internal_error", "the server failed on this request")

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> JSONResponse:
        """Ready when every model served was verified at load and the metadata database (and online store) answer."""
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
            body["prediction_log"] = {"pending_segments": spool.pending, "written": spool.stats.written}
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
        _add_predict(app, services, rollout, options, metrics, spool)
    app.openapi = _openapi(app, slots)  # type: ignore[method-assign]

    routes = frozenset(
        {"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/models"}
        | {f"/v1/models/{n}" for n in models}
        | {f"/v1/models/{n}/predict" for n in models}
    )
    return Guard(app, services, metrics, options, routes)


Explain = Annotated[
    bool,
    Query(
        description="add each row's explanation: base + per-feature contributions = raw_score "
        "(422 not_explainable for a calibrated model)"
    ),
]


def _add_predict(
    app: FastAPI, services: Services, rollout: Rollout, options: ServerOptions, metrics: Metrics, spool: Spool | None
) -> None:
    name = rollout.champion.current.name

    async def predict(request: Request, explain: Explain = False) -> JSONResponse:
        started = time.perf_counter()
        routing = rollout.now()  # read once: the request keeps these models if a swap comes while it runs
        model = routing.champion
        version = str(model.version)
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                # Python's parser takes NaN and Infinity: they reach validation and are refused per field
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                return _error(request, 422, "invalid_json", "the body is not JSON")
            records = body if isinstance(body, list) else [body]
        elif kind in TABLES:
            try:
                table = TABLES[kind](await request.body())
            except Exception:  # pyarrow raises several types for a malformed body; none is the client's to see
                return _error(request, 422, "invalid_table", f"the body is not a readable {kind} table")
            if table.num_rows > options.max_rows:
                message = f"{table.num_rows:,} rows in one request; at most {options.max_rows:,}"
                return _error(request, 413, "too_many_rows", message)
            records = table.to_pylist()  # the same per-field checks as JSON rows, on Python values
        else:
            media = ", ".join(["application/json", *TABLES])
            return _error(request, 415, "unsupported_media_type", f"send the rows as one of: {media}")
        if not records:
            return _error(request, 422, "no_rows", "send one row (a JSON object) or a list of rows")
        if len(records) > options.max_rows:
            message = f"{len(records):,} rows in one request; at most {options.max_rows:,}"
            return _error(request, 413, "too_many_rows", message)
        caller = request.state.caller
        try:
            score = partial(services.serving.predict, caller, routing, records, explained=explain)
            if len(records) <= INLINE_ROWS and not explain and not routing.looks_up(records):
                scored = score()  # a few rows, no I/O: tens of microseconds, less than a hop to a worker thread
            else:  # abandoned, not awaited, when the request times out: the thread finishes alone, its answer unsent
                scored = await anyio.to_thread.run_sync(score, abandon_on_cancel=True)
        except RowsInvalid as exc:
            for code, count in Counter(e.code for e in exc.errors).items():
                metrics.rejected.labels(model.name, version, code).inc(count)
            fields = [e.to_json() for e in exc.errors[:MAX_LISTED]]
            return _error(request, 422, exc.code or "invalid_rows", str(exc), exc.hint, fields=fields)
        if spool is not None:  # kept before it is sent: a crash after this loses nothing the caller saw
            from medops.serving.spool import SpoolUnavailable

            latency_ms = (time.perf_counter() - started) * 1000
            try:
                await spool.append(_records(scored, caller.user, request.state.request_id, latency_ms))
            except SpoolUnavailable:
                metrics.errors.labels("prediction_log").inc()
                message = "the prediction could not be logged, so it is not returned; try again"
                return _error(request, 503, "prediction_log_unavailable", message)
        for row, answered, variant in zip(scored.answers, scored.models, scored.variants, strict=True):
            metrics.predictions.labels(answered.name, str(answered.version), str(row["decision"]), variant).inc()
            if "out_of_range" in row:
                metrics.flagged.labels(answered.name, str(answered.version)).inc()
        shadow = None
        if routing.shadow is not None:  # after the response is sent: the caller never waits for it
            shadow = BackgroundTask(_shadow, services, caller, routing.shadow, records, spool, metrics, request)
        body = {"request_id": request.state.request_id, "predictions": scored.answers}
        return JSONResponse(body, background=shadow)

    # the summary and the body schema name the version: the OpenAPI document (_openapi) adds them
    app.add_api_route(f"/v1/models/{name}/predict", predict, methods=["POST"], tags=["predict"], name=f"predict_{name}")


def _records(scored: Scored, caller: str, request_id: str, latency_ms: float) -> list[dict[str, Any]]:
    from medops.serving.prediction_log import record

    return [
        record(m, row, inputs, caller=caller, request_id=request_id, latency_ms=latency_ms, variant=v, entity=who)
        for row, inputs, who, m, v in zip(
            scored.answers, scored.inputs, scored.entities, scored.models, scored.variants, strict=True
        )
    ]


async def _shadow(
    services: Services,
    caller: Caller,
    model: ServedModel,
    records: list[Any],
    spool: Spool | None,
    metrics: Metrics,
    request: Request,
) -> None:
    """The shadow's answers to a request already answered: logged as variant shadow, counted, never sent."""
    started = time.perf_counter()
    try:
        scored = await run_in_threadpool(services.serving.shadow, caller, model, records)
        if spool is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            await spool.append(_records(scored, caller.user, request.state.request_id, latency_ms))
    except Exception as exc:  # a shadow that fails costs the caller nothing; the operator sees the code
        reason = exc.code if isinstance(exc, MedopsError) and exc.code else type(exc).__name__
        metrics.shadow_failures.labels(model.name, str(model.version), reason).inc()
        log.warning("request %s: shadow %s:%s failed (%s)", request.state.request_id, model.name, model.version, reason)
        return
    for row in scored.answers:
        metrics.predictions.labels(model.name, str(model.version), str(row["decision"]), "shadow").inc()


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


def _error(
    request: Request, status: int, code: str, message: str, hint: str | None = None, **extra: Any
) -> JSONResponse:
    if hint:
        extra["hint"] = hint
    body = error_body(code, message, request.state.request_id, **extra)
    return JSONResponse(json.loads(body), status_code=status)


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
