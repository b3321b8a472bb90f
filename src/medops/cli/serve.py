"""`medops serve`: the prediction API for registered models, verified before the port opens."""

from __future__ import annotations

import json
import os

import typer

from medops.cli.common import JsonOption, cli_caller, err_console, open_workspace, print_json

EPILOG = (
    "Examples:  medops serve readmission   ·   medops serve readmission@champion sepsis:3 --port 8080   ·   "
    "medops serve readmission --workers 4 --metrics-public   ·   medops serve model/readmission-2.medops"
)


def serve(
    models: list[str] = typer.Argument(
        ..., help="NAME (its production version), NAME@ALIAS, NAME:VERSION, or a bundle file (PATH.medops)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes; each loads and verifies the bundles."),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", min=1, help="Larger request bodies get 413."),
    max_rows: int = typer.Option(1_000, "--max-rows", min=1, help="Rows in one predict request, at most."),
    metrics_public: bool = typer.Option(
        False, "--metrics-public", help="Serve /metrics without a token, for a Prometheus scraper."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Serve models over HTTP: every route but /healthz and /readyz needs a bearer token (API token or session)."""
    import uvicorn

    from medops.server.app import CONFIG_ENV, create_app
    from medops.server.guard import ServerOptions
    from medops.services import Services

    options = ServerOptions(max_body_bytes=max_body_bytes, max_rows=max_rows, metrics_public=metrics_public)
    ws = open_workspace()
    cli_caller(ws, writes=False)  # a workspace that needs a login to read needs one to serve its models too
    services = Services(ws)
    loaded = services.serving.load(models)  # refused here, before the port opens, if a bundle fails verification
    if as_json:  # what a supervisor script reads before the first request
        print_json({"url": f"http://{host}:{port}", "models": [m.summary() for m in loaded.values()]})
    else:
        for model in loaded.values():
            err_console.print(f"serving {model.name} version {model.version} (bundle {model.bundle_sha256[:12]})")
        err_console.print(f"listening on http://{host}:{port}  (Ctrl-C stops)")
    if workers == 1:
        uvicorn.run(create_app(services, loaded, options), host=host, port=port, log_level="warning")
        return
    ws.close()
    # the versions resolved here, not the specs: every worker serves the same ones even if an alias moves meanwhile
    resolved = [m.spec for m in loaded.values()]
    os.environ[CONFIG_ENV] = json.dumps({"models": resolved, "options": options.__dict__})
    uvicorn.run(
        "medops.server.app:from_environment", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )
