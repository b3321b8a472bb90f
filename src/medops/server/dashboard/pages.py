"""The dashboard's pages: server-rendered HTML over the same services the API and the CLI call.

Each page is a parse, service calls with the signed-in person's Caller, and a template. Nothing
is decided here: reads go through ``IdentityService.reader`` (a person without a role that reads
records sees none), changes through the services' own role checks, and a signature re-checks the
password the form carries. A person signs in with a form that opens the same session as
``POST /v1/auth/login`` (HttpOnly, SameSite=Strict cookie); every form that changes something
carries the session's CSRF token (the HMAC the API checks in its header), and a POST whose
Origin is another site's is refused before it is read.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from medops.caller import Caller
from medops.errors import AuthenticationFailed, MedopsError, PermissionDenied
from medops.evaluation.report import interval
from medops.server.api.auth import SESSION_COOKIE, csrf_token, services
from medops.server.api.sessions import clear_session_cookies, set_session_cookies
from medops.server.dashboard import views

router = APIRouter(prefix="/ui", include_in_schema=False)

# Scripts and styles come from this server only; charts are inline SVG (their own style attributes).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("medops.server.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(when=views.when, number=views.number, ci=interval)


class _Viewer:
    """The signed-in person of a request: their Caller and their session's secret (for the CSRF token)."""

    def __init__(self, caller: Caller, secret: str) -> None:
        self.caller = caller
        self.secret = secret

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


def _viewer(request: Request) -> _Viewer | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    try:
        return _Viewer(services(request).identity.authenticate(secret), secret)
    except AuthenticationFailed:
        return None


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def _render(
    request: Request, template: str, viewer: _Viewer | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    context.setdefault("error", None)
    html = _templates.get_template(template).render(
        user=viewer.caller.user if viewer else None,
        csrf=viewer.csrf if viewer else "",
        here=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _page(
    request: Request, template: str, build: Callable[[Any, Caller], dict[str, Any]], *, error: str | None = None
) -> Response:
    """A page for the signed-in person (else the login form): ``build`` reads what it shows, as them."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        context = build(services(request), viewer.caller)
    except MedopsError as exc:  # a refusal (403, audited), an unknown name (404), ...: said on the page
        return _render(request, "refused.html", viewer, status=exc.http_status, message=exc.message)
    return _render(request, template, viewer, error=error, **context)


async def _form(request: Request, *, csrf: bool = True) -> tuple[_Viewer | None, dict[str, str]]:
    """A change's form, from the signed-in person, from this site, with their session's CSRF token
    (``csrf``: the sign-in form has no session to take one from; the Origin check still applies)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise PermissionDenied("a form sent from another site is refused", code="csrf_failed")
    fields = {k: v[-1] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
    viewer = _viewer(request)
    if csrf and viewer is not None and not hmac.compare_digest(fields.get("csrf", "").encode(), viewer.csrf.encode()):
        raise PermissionDenied("the form's CSRF token is missing or wrong: reload the page", code="csrf_failed")
    return viewer, fields


# --- signing in ----------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/ui/") -> Response:
    return _render(request, "login.html", None, next=_local(next))


@router.post("/login")
async def login(request: Request) -> Response:
    _, fields = await _form(request, csrf=False)
    target = _local(fields.get("next", "/ui/"))
    try:
        session, secret = await run_in_threadpool(
            services(request).identity.login,
            fields.get("username", "").strip(),
            password=fields.get("password", ""),
            channel="web",
        )
    except MedopsError as exc:
        context = {"next": target, "error": exc.message}
        return _render(request, "login.html", None, status=exc.http_status, **context)
    response = RedirectResponse(target, status_code=303)
    set_session_cookies(request, response, session, secret)  # the session POST /v1/auth/login opens
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer, _ = await _form(request)
    if viewer is not None:
        await run_in_threadpool(services(request).identity.logout, viewer.secret)
    response = RedirectResponse("/ui/login", status_code=303)
    clear_session_cookies(response)
    return response


def _local(target: str) -> str:
    """Where to go after signing in: a page of this dashboard only (never another site)."""
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/"


# --- pages ---------------------------------------------------------------------------------------


@router.get("")
def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/")
def home(request: Request) -> Response:
    return _page(request, "home.html", views.home)


@router.get("/models/{name}")
def model(request: Request, name: str) -> Response:
    return _page(request, "model.html", lambda s, c: views.model(s, c, name))


@router.get("/models/{name}/{version}")
def version(request: Request, name: str, version: int) -> Response:
    return _page(request, "version.html", lambda s, c: views.version(s, c, name, version))


@router.post("/models/{name}/{version}/sign")
async def sign(request: Request, name: str, version: int) -> Response:
    """A signature from the page: the password is checked again for this signing (Part 11, 11.200)."""
    viewer, fields = await _form(request)
    if viewer is None:
        return _to_login(request)
    ref = f"{name}:{version}"
    registry = services(request).registry
    try:
        if fields.get("decision") == "reject":
            await run_in_threadpool(
                registry.reject,
                viewer.caller,
                ref,
                fields.get("password", ""),
                fields.get("role", ""),
                fields.get("reason", ""),
            )
        else:
            await run_in_threadpool(
                registry.approve, viewer.caller, ref, fields.get("password", ""), fields.get("role", "")
            )
    except MedopsError as exc:
        return await run_in_threadpool(
            _page, request, "version.html", lambda s, c: views.version(s, c, name, version), error=exc.message
        )
    return RedirectResponse(f"/ui/models/{quote(name)}/{version}#approvals", status_code=303)


@router.get("/alerts")
def alerts(request: Request, state: str | None = None) -> Response:
    return _page(request, "alerts.html", lambda s, c: views.alerts(s, c, state))


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(request: Request, alert_id: str, action: str) -> Response:
    """Acknowledge or resolve an alert, with the reason the form requires."""
    viewer, fields = await _form(request)
    if viewer is None:
        return _to_login(request)
    monitoring = services(request).monitoring
    act = {"acknowledge": monitoring.acknowledge, "resolve": monitoring.resolve}.get(action)
    if act is None:
        return _render(request, "refused.html", viewer, status=404, message=f"no alert action {action!r}")
    try:
        await run_in_threadpool(act, viewer.caller, alert_id, fields.get("reason", ""))
    except MedopsError as exc:
        return await run_in_threadpool(
            _page, request, "alerts.html", lambda s, c: views.alerts(s, c, None), error=exc.message
        )
    return RedirectResponse(f"/ui/alerts#alert-{quote(alert_id)}", status_code=303)


@router.get("/audit")
def audit(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    entity: str | None = None,
    verify: bool = False,
) -> Response:
    return _page(request, "audit.html", lambda s, c: views.audit(s, c, actor, action, entity, verify))


@router.get("/runs")
def runs(request: Request, experiment: str | None = None, metric: str | None = None) -> Response:
    return _page(request, "runs.html", lambda s, c: views.runs(s, c, experiment, metric))


@router.get("/runs/compare")
def compare(request: Request) -> Response:
    ids = request.query_params.getlist("run")
    if not ids:
        return RedirectResponse("/ui/runs", status_code=303)
    return _page(request, "compare.html", lambda s, c: views.compare(s, c, ids))


@router.get("/data")
def data(request: Request, name: str | None = None) -> Response:
    return _page(request, "data.html", lambda s, c: views.data(s, c, name))


@router.get("/data/{ref}")
def dataset(request: Request, ref: str, other: str | None = None) -> Response:
    return _page(request, "dataset.html", lambda s, c: views.dataset(s, c, ref, other or None))


@router.get("/lineage")
def lineage(request: Request, entity: str) -> Response:
    return _page(request, "lineage.html", lambda s, c: views.lineage(s, c, entity))


@router.get("/monitoring")
def monitoring(request: Request, model: str | None = None) -> Response:
    return _page(request, "monitoring.html", lambda s, c: views.monitoring(s, c, model))


@router.get("/admin")
def admin(request: Request) -> Response:
    return _page(request, "admin.html", views.admin)


# --- the page's own files -----------------------------------------------------------------------

STATIC = {"htmx.min.js": "text/javascript", "dashboard.css": "text/css"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The dashboard's script and style, shipped in the package: nothing loads from another site."""
    if name not in STATIC:
        return Response(status_code=404)
    from importlib.resources import files

    body = (files("medops.server.dashboard") / "static" / name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=3600"})
