"""One model's ``POST /v1/models/{name}/predict``: two ways in, one answer.

``Lane`` takes the common request straight from the Guard, without FastAPI: a JSON body that
the model's champion scores (no query, no canary or shadow, no entity to look up), on the event
loop up to INLINE_ROWS rows and on a worker thread above. Routing, parameter parsing and the
response class cost more than scoring a few rows, and a third of a 100-row request's time
(measured: 45 % more 100-row requests a second once the lane took them). Everything else (an
explanation, an Arrow or Parquet body, a rollout, an online lookup, and every refusal) goes
through the FastAPI route ``add_route`` builds, which the OpenAPI document describes. A request
the lane gives back is handled by the route from the start, so the route decides every error.
Both ways score through the serving service, keep the records in the prediction log before
answering, count the same metrics and send the same body.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from medops.clock import now_iso
from medops.errors import MedopsError
from medops.server.guard import ServerOptions, Tracked, error_body, error_response
from medops.server.metrics import Metrics
from medops.services import Services
from medops.serving.prediction_log import record, request_line
from medops.serving.rollout import Rollout
from medops.serving.scoring import encode_answer
from medops.serving.spool import KEPT, SpoolUnavailable
from medops.serving.validation import MAX_LISTED, DuplicateField, RowsInvalid, first_repeated, parse_json

if TYPE_CHECKING:
    from medops.caller import Caller
    from medops.services.serving import Scored
    from medops.serving.models import ServedModel
    from medops.serving.spool import Spool

log = logging.getLogger("medops.server")
INLINE_ROWS = 32  # requests up to this many rows are scored on the event loop (no online-store read, no explanation)
PARSED = "json_body"  # the request state's key for a body the lane parsed and left to the route


def _arrow_stream(body: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.BufferReader(body)).read_all()


def _parquet(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(body))


# batch bodies besides JSON: a table whose columns are the model's features
TABLES = {"application/vnd.apache.arrow.stream": _arrow_stream, "application/vnd.apache.parquet": _parquet}

Explain = Annotated[
    bool,
    Query(
        description="add each row's explanation: base + per-feature contributions = raw_score "
        "(422 not_explainable for a calibrated model)"
    ),
]


class Lane:
    """The predict requests that need nothing FastAPI adds (see the module docstring)."""

    def __init__(
        self, services: Services, rollout: Rollout, options: ServerOptions, metrics: Metrics, spool: Spool | None
    ) -> None:
        self.services = services
        self.rollout = rollout
        self.options = options
        self.metrics = metrics
        self.spool = spool

    async def __call__(self, scope: MutableMapping[str, Any], body: bytes, send: Tracked) -> bool:
        """Answer the request and say True, or say False and leave it, untouched, to the route."""
        if scope["method"] != "POST" or scope.get("query_string"):
            return False
        for name, value in scope.get("headers", []):
            if name == b"content-type" and value.split(b";")[0].strip().lower() != b"application/json":
                return False
        started = time.perf_counter()
        routing = self.rollout.now()
        if routing.canary is not None or routing.shadow is not None:
            return False
        try:
            parsed = parse_json(body)
        except (ValueError, UnicodeDecodeError):  # the route parses again and names the problem
            return False
        records = parsed if isinstance(parsed, list) else [parsed]
        if not 0 < len(records) <= self.options.max_rows or routing.looks_up(records):
            scope["state"][PARSED] = parsed  # the route takes the body as parsed here, not parsing it again
            return False
        state = scope["state"]
        caller, request_id = state["caller"], state["request_id"]
        try:
            if len(records) <= INLINE_ROWS:  # tens of microseconds: less than a hop to a worker thread
                scored = self.services.serving.predict(caller, routing, records)
            else:  # abandoned, not awaited, when the request times out, as on the route
                score = partial(self.services.serving.predict, caller, routing, records)
                scored = await anyio.to_thread.run_sync(score, abandon_on_cancel=True)
        except MedopsError:  # a refusal: the route checks again and names every problem
            scope["state"][PARSED] = parsed
            return False
        status, answer = 200, encode_answer(request_id, scored.answers)
        try:
            await keep(self.spool, scored, caller, request_id, started, body, answer)
        except SpoolUnavailable:
            status, answer = unlogged(self.metrics, request_id)
        if status == 200:
            count(self.metrics, scored)
        await send.json(status, answer, [])
        return True


def add_route(
    app: FastAPI, services: Services, rollout: Rollout, options: ServerOptions, metrics: Metrics, spool: Spool | None
) -> None:
    """The FastAPI route for every predict request the lane leaves (see the module docstring)."""
    name = rollout.champion.current.name

    async def predict(request: Request, explain: Explain = False) -> Response:
        started = time.perf_counter()
        routing = rollout.now()  # read once: the request keeps these models if a swap comes while it runs
        model = routing.champion
        version = str(model.version)
        request_id = request.state.request_id
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        sent: bytes | None = None  # a JSON body, which the log keeps as it came
        if kind == "application/json":
            try:
                # Python's parser takes NaN and Infinity: they reach validation and are refused per field
                sent = await request.body()
                body = getattr(request.state, PARSED, None)
                if body is None:
                    body = parse_json(sent)
            except DuplicateField as exc:
                return error_response(request_id, 422, "duplicate_field", str(exc))
            except (ValueError, UnicodeDecodeError):
                return error_response(request_id, 422, "invalid_json", "the body is not JSON")
            records = body if isinstance(body, list) else [body]
        elif kind in TABLES:
            try:
                table = TABLES[kind](await request.body())
            except Exception:  # pyarrow raises several types for a malformed body; none is the client's to see
                return error_response(request_id, 422, "invalid_table", f"the body is not a readable {kind} table")
            repeated = first_repeated(table.column_names)  # a table may name a column twice: Arrow allows it
            if repeated is not None:
                return error_response(request_id, 422, "duplicate_field", str(DuplicateField(repeated)))
            if table.num_rows > options.max_rows:
                message = f"{table.num_rows:,} rows in one request; at most {options.max_rows:,}"
                return error_response(request_id, 413, "too_many_rows", message)
            records = table.to_pylist()  # the same per-field checks as JSON rows, on Python values
        else:
            media = ", ".join(["application/json", *TABLES])
            message = f"send the rows as one of: {media}"
            return error_response(request_id, 415, "unsupported_media_type", message)
        if not records:
            return error_response(request_id, 422, "no_rows", "send one row (a JSON object) or a list of rows")
        if len(records) > options.max_rows:
            message = f"{len(records):,} rows in one request; at most {options.max_rows:,}"
            return error_response(request_id, 413, "too_many_rows", message)
        caller = request.state.caller
        try:
            score = partial(services.serving.predict, caller, routing, records, explained=explain)
            if len(records) <= INLINE_ROWS and not explain and not routing.looks_up(records):
                scored = score()  # a few rows, no I/O: tens of microseconds, less than a hop to a worker thread
            else:  # abandoned, not awaited, when the request times out: the thread finishes alone, its answer unsent
                scored = await anyio.to_thread.run_sync(score, abandon_on_cancel=True)
        except RowsInvalid as exc:
            for code, n in Counter(e.code for e in exc.errors).items():
                metrics.rejected.labels(model.name, version, code).inc(n)
            fields = [e.to_json() for e in exc.errors[:MAX_LISTED]]
            return error_response(request_id, 422, exc.code or "invalid_rows", str(exc), exc.hint, fields=fields)
        answer = encode_answer(request_id, scored.answers)
        try:
            await keep(spool, scored, caller, request_id, started, sent, answer)
        except SpoolUnavailable:
            status, refusal = unlogged(metrics, request_id)
            return Response(refusal, status_code=status, media_type="application/json")
        count(metrics, scored)
        shadow = None
        if routing.shadow is not None:  # after the response is sent: the caller never waits for it
            shadow = BackgroundTask(_shadow, services, caller, routing.shadow, records, spool, metrics, request_id)
        return Response(answer, media_type="application/json", background=shadow)

    # the summary and the body schema name the version: the OpenAPI document (app._openapi) adds them
    app.add_api_route(f"/v1/models/{name}/predict", predict, methods=["POST"], tags=["predict"], name=f"predict_{name}")


def keep(
    spool: Spool | None,
    scored: Scored,
    caller: Caller,
    request_id: str,
    started: float,
    body: bytes | None,
    answer: bytes,
) -> Awaitable[None]:
    """To await before ``answer`` is sent: done once the answers are in the log (no answer without its
    record), SpoolUnavailable when they could not be kept. ``body``: the JSON the rows came in, when they
    were scored as sent (the log then keeps the request as one line). What the spool returns, not a
    coroutine around it: every answered request awaits it."""
    if spool is None:
        return KEPT  # a server whose log is off (a benchmark's)
    latency_ms = (time.perf_counter() - started) * 1000
    return spool.append(_lines(scored, caller.user, request_id, latency_ms, body, answer))


def unlogged(metrics: Metrics, request_id: str) -> tuple[int, bytes]:
    """503 for answers the log could not keep: they are not sent."""
    metrics.errors.labels("prediction_log").inc()
    message = "the prediction could not be logged, so it is not returned; try again"
    return 503, error_body("prediction_log_unavailable", message, request_id)


def count(metrics: Metrics, scored: Scored) -> None:
    """The answers sent, by model, version, decision and variant; and those flagged out of range."""
    answers, models = scored.answers, scored.models
    if len(answers) == 1:  # most requests: one label set, no tally
        row, served = answers[0], models[0]
        version = str(served.version)
        metrics.child(metrics.predictions, served.name, version, str(row["decision"]), scored.variants[0]).inc()
        if "out_of_range" in row:
            metrics.child(metrics.flagged, served.name, version).inc()
        return
    # counted per (model, decision, variant) in C, labelled once per kind: 29 against 49 us for 100 rows
    by_id = {id(m): m for m in models}
    sent = Counter(zip(map(id, models), (row["decision"] for row in answers), scored.variants, strict=True))
    flagged = Counter(id(m) for row, m in zip(answers, models, strict=True) if "out_of_range" in row)
    for (model, decision, variant), n in sent.items():  # one look-up per label set, not per row
        served = by_id[model]
        metrics.child(metrics.predictions, served.name, str(served.version), str(decision), variant).inc(n)
    for model, n in flagged.items():
        served = by_id[model]
        metrics.child(metrics.flagged, served.name, str(served.version)).inc(n)


def _lines(
    scored: Scored, caller: str, request_id: str, latency_ms: float, body: bytes | None, answer: bytes
) -> list[dict[str, Any]] | bytes:
    """What the log keeps of a request: one line of the body and the answer when every row was scored as
    sent, else a record per row."""
    at = now_iso()  # the request's time, for each of its rows
    if body is not None and not any(scored.entities):  # an entity is a non-empty pseudonym
        line = request_line(body, answer, caller=caller, request_id=request_id, latency_ms=latency_ms, at=at)
        if line is not None:
            return line
    return _records(scored, caller, request_id, latency_ms, at)


def _records(
    scored: Scored, caller: str, request_id: str, latency_ms: float, at: str | None = None
) -> list[dict[str, Any]]:
    at = at or now_iso()  # the request's time, for each of its rows
    return [
        record(m, r, inputs, caller=caller, request_id=request_id, latency_ms=latency_ms, variant=v, entity=who, at=at)
        for r, inputs, who, m, v in zip(
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
    request_id: str,
) -> None:
    """The shadow's answers to a request already answered: logged as variant shadow, counted, never sent."""
    started = time.perf_counter()
    try:
        scored = await run_in_threadpool(services.serving.shadow, caller, model, records)
        if spool is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            await spool.append(_records(scored, caller.user, request_id, latency_ms))
    except Exception as exc:  # a shadow that fails costs the caller nothing; the operator sees the code
        reason = exc.code if isinstance(exc, MedopsError) and exc.code else type(exc).__name__
        metrics.shadow_failures.labels(model.name, str(model.version), reason).inc()
        log.warning("request %s: shadow %s:%s failed (%s)", request_id, model.name, model.version, reason)
        return
    for row in scored.answers:
        metrics.predictions.labels(model.name, str(model.version), str(row["decision"]), "shadow").inc()
