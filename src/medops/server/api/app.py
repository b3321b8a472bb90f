"""The platform API's app: probes, metrics, login, and one router per capability, behind the Envelope.

``create_api`` builds it over one workspace; ``from_environment`` is the factory each uvicorn worker
calls when `medops server --workers N` starts several processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from medops.platform import Platform
from medops.server.api import problems
from medops.server.api.documents import Doc
from medops.server.api.middleware import ApiMetrics, Envelope
from medops.server.api.oidc import OidcSettings, Provider
from medops.server.api.oidc import router as oidc_routes
from medops.server.api.routes import ROUTERS
from medops.server.api.sessions import router as sessions
from medops.services import Services

CONFIG_ENV = "MEDOPS_API_CONFIG"  # what `medops server --workers N` hands each worker process
OIDC_SECRET_ENV = "MEDOPS_OIDC_CLIENT_SECRET"  # the identity provider's client secret, never on a command line


@dataclass(frozen=True)
class ApiOptions:
    max_body_bytes: int = 1_048_576  # larger request bodies get 413
    metrics_public: bool = False  # /metrics without a token, for a scraper on a trusted network
    secure_cookies: bool = True  # the session cookie only over HTTPS (browsers treat localhost as secure too)
    oidc: OidcSettings | None = None  # login with the hospital's identity provider, besides passwords and tokens


def create_api(platform: Platform, options: ApiOptions | None = None) -> Envelope:
    options = options or ApiOptions()
    services = Services(platform)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        services.identity.close()
        await run_in_threadpool(platform.close)

    app = FastAPI(
        title="medops platform API",
        version="1",
        docs_url=None,  # no interactive pages: every route but the probes and the login needs a credential
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        default_response_class=Doc,
    )
    app.state.services = services
    app.state.options = options
    problems.install(app)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> Doc:
        """The process answers."""
        return Doc({"status": "ok"})

    @app.get("/readyz", tags=["probes"])
    def readyz() -> Doc:
        """Ready when the metadata database answers."""
        database = services.serving.database_reachable()
        return Doc({"ready": database, "database": database}, status_code=200 if database else 503)

    @app.get(
        "/metrics",
        tags=["probes"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    )
    def prometheus(request: Request) -> Response:
        """Prometheus metrics of this process (a credential unless the server was started with --metrics-public)."""
        if not options.metrics_public:
            from medops.server.api.auth import acting

            acting(request)
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(sessions, responses=problems.RESPONSES)
    if options.oidc is not None:
        app.state.oidc = Provider(options.oidc)
        app.include_router(oidc_routes, responses=problems.RESPONSES)
    for router in ROUTERS:
        app.include_router(router, responses=problems.RESPONSES)
    from medops.server.dashboard.pages import router as dashboard

    app.include_router(dashboard)  # HTML pages under /ui, outside the API's schema
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return Envelope(app, metrics, options.max_body_bytes)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, with the problem schema the error responses refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
            doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = problems.PROBLEM_SCHEMA
            for item in doc["paths"].values():
                for operation in item.values():
                    for status, answer in operation.get("responses", {}).items():
                        json_answer = answer.get("content", {}).get("application/json")
                        if status.startswith("2") and json_answer is not None:
                            json_answer["schema"] = {}  # the service's to_json(): described in docs/server.md
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def from_environment() -> Envelope:
    """The app of one uvicorn worker: the workspace of MEDOPS_HOME and the options the CLI handed over."""
    from medops.workspace import Workspace

    config: dict[str, Any] = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    if config.get("oidc"):  # its secret is not in the handed-over config: each worker reads it as the CLI did
        config["oidc"] = OidcSettings(**config["oidc"], client_secret=os.environ.get(OIDC_SECRET_ENV, ""))
    return create_api(Workspace.open(), ApiOptions(**config))


def options_env(options: ApiOptions) -> str:
    doc = asdict(options)
    if doc.get("oidc"):
        doc["oidc"].pop("client_secret")
    return json.dumps(doc)
