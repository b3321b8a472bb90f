"""`medops server`: the platform REST API over this workspace, for a team that shares it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from medops.cli.common import JsonOption, err_console, open_workspace, print_json

if TYPE_CHECKING:
    from medops.server.api.oidc import OidcSettings

EPILOG = (
    "Examples:  medops server   ·   medops server --host 0.0.0.0 --port 8443 --ssl-certfile cert.pem "
    "--ssl-keyfile key.pem   ·   medops server --workers 4 --metrics-public"
)


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes, each with its own connections."),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", min=1, help="Larger request bodies get 413."),
    metrics_public: bool = typer.Option(
        False, "--metrics-public", help="Serve /metrics without a credential, for a Prometheus scraper."
    ),
    ssl_certfile: str | None = typer.Option(None, "--ssl-certfile", help="TLS certificate (PEM): serve HTTPS."),
    ssl_keyfile: str | None = typer.Option(None, "--ssl-keyfile", help="The certificate's private key (PEM)."),
    insecure_cookies: bool = typer.Option(
        False,
        "--insecure-cookies",
        help="Send the session cookie over plain HTTP on a non-local address (only behind a trusted network).",
    ),
    graceful_seconds: int = typer.Option(
        30, "--graceful-seconds", min=0, help="On SIGTERM, how long requests in flight get to finish."
    ),
    oidc_issuer: str | None = typer.Option(
        None, "--oidc-issuer", metavar="URL", help="Also log in with this OpenID Connect provider (its issuer URL)."
    ),
    oidc_client_id: str | None = typer.Option(None, "--oidc-client-id", help="This server's client id there."),
    oidc_username_claim: str = typer.Option(
        "preferred_username", "--oidc-username-claim", help="The ID token's claim that names the medops user."
    ),
    public_url: str | None = typer.Option(
        None, "--public-url", metavar="URL", help="This server's URL as browsers reach it (behind a proxy), for OIDC."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Serve the platform API: every capability of the workspace over REST, with token and session auth.

    Users, data, runs, evaluations, the registry (signing re-checks the password), predictions,
    monitoring and the audit trail; the database and artifact store stay behind it. Every
    endpoint but /healthz, /readyz and login needs a credential; roles are checked as the CLI
    checks them, and every refusal is audited. One JSON line per request goes to stderr.
    """
    import uvicorn

    from medops.server.api.app import CONFIG_ENV, ApiOptions, create_api, options_env
    from medops.server.transport import HTTP_PROTOCOL

    if (ssl_certfile is None) != (ssl_keyfile is None):
        from medops.errors import InvalidInput

        raise InvalidInput("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    options = ApiOptions(
        max_body_bytes=max_body_bytes,
        metrics_public=metrics_public,
        secure_cookies=not insecure_cookies,
        oidc=_oidc(oidc_issuer, oidc_client_id, oidc_username_claim, public_url or f"http://{host}:{port}"),
    )
    ws = open_workspace(here=True)  # refused here, before the port opens, if the workspace can't be opened
    scheme = "https" if ssl_certfile else "http"
    if as_json:  # what a supervisor script reads before the first request
        print_json({"url": f"{scheme}://{host}:{port}", "workers": workers, "workspace": str(ws.settings.home)})
    else:
        err_console.print(f"medops platform API on {scheme}://{host}:{port}  (Ctrl-C stops)")
    common = {
        "host": host,
        "port": port,
        "http": HTTP_PROTOCOL,
        "log_level": "warning",
        "log_config": _log_config(),
        "timeout_graceful_shutdown": graceful_seconds,
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
        "server_header": False,
    }
    if workers == 1:
        uvicorn.run(create_api(ws, options), **common)  # type: ignore[arg-type]
        return
    ws.close()
    os.environ[CONFIG_ENV] = options_env(options)
    uvicorn.run("medops.server.api.app:from_environment", factory=True, workers=workers, **common)  # type: ignore[arg-type]


def _oidc(issuer: str | None, client_id: str | None, claim: str, public_url: str) -> OidcSettings | None:
    from medops.errors import InvalidInput
    from medops.server.api.app import OIDC_SECRET_ENV
    from medops.server.api.oidc import OidcSettings

    if issuer is None:
        return None
    secret = os.environ.get(OIDC_SECRET_ENV, "")
    if not client_id or not secret:
        raise InvalidInput(
            f"--oidc-issuer needs --oidc-client-id and the client secret in {OIDC_SECRET_ENV}",
            hint="register this server with the identity provider as a confidential client first",
        )
    redirect = f"{public_url.rstrip('/')}/v1/auth/oidc/callback"
    return OidcSettings(issuer, client_id, secret, redirect, username_claim=claim)


def _log_config() -> dict[str, object]:
    """uvicorn's logging, plus medops's: the access lines as they are (JSON), errors timestamped."""
    from medops.cli.serve import _log_config as serving

    config = serving()
    config["formatters"]["medops_json"] = {"format": "%(message)s"}
    config["handlers"]["medops_json"] = {
        "formatter": "medops_json",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["medops.api.access"] = {
        "handlers": ["medops_json"],
        "level": "INFO",
        "propagate": False,
    }
    return config
