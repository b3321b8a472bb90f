"""`medops serve`: the prediction API for registered models, verified before the port opens."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

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
    follow_interval: float = typer.Option(
        5.0,
        "--follow-interval",
        min=0,
        metavar="SECONDS",
        help="Check the registry this often and swap in a NAME or NAME@ALIAS model that moved; 0 never does.",
    ),
    shadow: list[str] = typer.Option(
        [],
        "--shadow",
        metavar="[NAME=]SPEC",
        help="Score every request with this model too and log it as the shadow; never returned. Repeatable.",
    ),
    canary: list[str] = typer.Option(
        [],
        "--canary",
        metavar="[NAME=]SPEC",
        help="Answer a share of the rows with this model (approved for production), sticky by entity. Repeatable.",
    ),
    canary_percent: list[str] = typer.Option(
        [], "--canary-percent", metavar="[NAME=]PERCENT", help="The canary's share of rows, e.g. 10. Repeatable."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, metavar="SECONDS", help="A request not answered by then gets 504."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Serve models over HTTP: every route but /healthz and /readyz needs a bearer token (API token or session).

    Every answer is written to the prediction log before it is sent (see `medops predictions`): into
    the operating system's file cache, synced to disk about 50 ms later, or onto disk before it is
    sent when the setting prediction_log_sync is before_answer (MEDOPS_PREDICTION_LOG_SYNC).
    """
    import uvicorn

    from medops.server.app import CONFIG_ENV, create_app
    from medops.server.guard import ServerOptions
    from medops.server.transport import HTTP_PROTOCOL
    from medops.services import Services

    options = ServerOptions(
        max_body_bytes=max_body_bytes,
        max_rows=max_rows,
        metrics_public=metrics_public,
        follow_interval=follow_interval,
        request_timeout=timeout,
    )
    ws = open_workspace(here=True)
    cli_caller(ws, writes=False)  # a workspace that needs a login to read needs one to serve its models too
    services = Services(ws)
    plan = services.serving.plan_rollouts(models, shadow, canary, canary_percent)  # checked before any bundle
    loaded = services.serving.load(models)  # refused here, before the port opens, if a bundle fails verification
    rollouts = services.serving.rollouts(loaded, plan)
    kept = {"spool": str(ws.settings.prediction_spool_root), "sync": ws.settings.prediction_log_sync}
    if as_json:  # what a supervisor script reads before the first request
        variants = {n: r.now().describe() for n, r in rollouts.items()}
        print_json(
            {
                "url": f"http://{host}:{port}",
                "models": [m.summary() for m in loaded.values()],
                **({"variants": variants} if variants else {}),
                "prediction_log": kept,
            }
        )
    else:
        for model in loaded.values():
            followed = follow_interval > 0 and model.spec is not None and model.spec.version is None
            line = f"serving {model.name} version {model.version} (bundle {model.bundle_sha256[:12]})"
            err_console.print(f"{line}, following {model.spec}" if followed else line)
            for variant, beside in (rollouts[model.name].now().describe() if model.name in rollouts else {}).items():
                share = f", {beside['percent']:g}% of rows" if variant == "canary" else ", logged, never returned"
                err_console.print(f"  {variant}: {beside['name']} version {beside['version']}{share}")
        when = (
            "is on disk before it is sent"
            if kept["sync"] == "before_answer"
            else "is written before it is sent, and on disk about 50 ms later"
        )
        err_console.print(f"prediction log: every answer {when} (prediction_log_sync = {kept['sync']})")
        err_console.print(f"listening on http://{host}:{port}  (Ctrl-C stops)")
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": HTTP_PROTOCOL,
        "log_level": "warning",
        "log_config": _log_config(),
        # the serving API reads no client address or forwarded scheme, names no server, and keeps no access
        # log (the prediction log and /metrics record every request): each of these costs every request
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
    }
    if workers == 1:
        uvicorn.run(create_app(services, loaded, options, rollouts), **common)
        return
    ws.close()
    # Following, each worker follows the specs itself. Not following (or a bundle file), what was loaded here:
    # every worker serves the same version even if an alias moves while they start.
    specs = [str(m.spec) if follow_interval and m.spec else m.worker_spec for m in loaded.values()]
    os.environ[CONFIG_ENV] = json.dumps({"models": specs, "rollout": plan.to_json(), "options": options.__dict__})
    uvicorn.run("medops.server.app:from_environment", factory=True, workers=workers, **common)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging (at the level given to it) plus medops's own at INFO, timestamped, on stderr:
    a swap of the model served, a version refused, the trace of a request that failed (never PHI)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["medops"] = {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        "datefmt": "%Y-%m-%dT%H:%M:%S%z",
    }
    config["handlers"]["medops"] = {
        "formatter": "medops",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["medops"] = {"handlers": ["medops"], "level": "INFO", "propagate": False}
    return config
