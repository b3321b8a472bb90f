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
from medops.errors import AuthenticationFailed, InvalidInput, MedopsError, PermissionDenied
from medops.evaluation.report import interval
from medops.identity.roles import parse_role, parse_roles
from medops.server.api.auth import SESSION_COOKIE, csrf_token, services
from medops.server.api.sessions import clear_session_cookies, set_session_cookies
from medops.server.dashboard import views
from medops.services import Services

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
        return _Viewer(services(request).identity.authenticate_remembered(secret), secret)
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
    request: Request,
    template: str,
    build: Callable[[Any, Caller], dict[str, Any]],
    *,
    error: MedopsError | None = None,
    **extra: Any,
) -> Response:
    """A page for the signed-in person (else the login form): ``build`` reads what it shows, as them.
    ``error`` is a change the page's form asked for and the service refused: said on top, with its status."""
    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        context = build(services(request), viewer.caller)
    except MedopsError as exc:  # a refusal (403, audited), an unknown name (404), ...: said on the page
        return _render(request, "refused.html", viewer, status=exc.http_status, message=exc.message)
    status = error.http_status if error else 200
    return _render(request, template, viewer, status=status, error=error.message if error else None, **context, **extra)


_LISTS = {"roles"}  # a form's checkboxes: every ticked value, comma-joined


async def _form(request: Request, *, csrf: bool = True) -> tuple[_Viewer | None, dict[str, str]]:
    """A change's form, from the signed-in person, from this site, with their session's CSRF token
    (``csrf``: the sign-in form has no session to take one from; the Origin check still applies)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise PermissionDenied("a form sent from another site is refused", code="csrf_failed")
    parsed = parse_qs((await request.body()).decode(), keep_blank_values=True)
    fields = {k: ",".join(v) if k in _LISTS else v[-1] for k, v in parsed.items()}
    viewer = _viewer(request)
    if csrf and viewer is not None and not hmac.compare_digest(fields.get("csrf", "").encode(), viewer.csrf.encode()):
        raise PermissionDenied("the form's CSRF token is missing or wrong: reload the page", code="csrf_failed")
    return viewer, fields


Change = Callable[[Services, Caller, dict[str, str]], Any]


async def _act(
    request: Request, change: Change, *, done: str, template: str, build: Callable[[Any, Caller], dict[str, Any]]
) -> Response:
    """A form's change, made by the service as the signed-in person: then back to ``done``, or, refused,
    the page again with the refusal on top (the form's fields are not lost to a redirect)."""
    viewer, fields = await _form(request)
    if viewer is None:
        return _to_login(request)
    try:
        await run_in_threadpool(change, services(request), viewer.caller, fields)
    except MedopsError as exc:
        return await run_in_threadpool(_page, request, template, build, error=exc)
    return RedirectResponse(done, status_code=303)


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


@router.post("/models/{name}/{version}/{change}")
async def change_version(request: Request, name: str, version: int, change: str) -> Response:
    """What a version's page asks: a signature (the password checked again for this signing, Part 11,
    11.200), the missing roles asked to sign, a stage move, an alias pointed at it or taken off. Each
    with its reason; production still needs every signature (the service checks, not the page)."""
    if change not in ("sign", "request", "stage", "alias"):
        return Response(status_code=404)
    ref = f"{name}:{version}"

    def changes(s: Services, caller: Caller, f: dict[str, str]) -> None:
        reason = _reason(f)
        if change == "sign" and f.get("decision") == "reject":
            s.registry.reject(caller, ref, f.get("password", ""), f.get("role", ""), f.get("reason", ""))
        elif change == "sign":
            s.registry.approve(caller, ref, f.get("password", ""), f.get("role", ""))
        elif change == "request":
            s.registry.request_approvals(caller, ref, reason=reason)
        elif change == "stage":
            s.registry.promote(caller, ref, f.get("stage", ""), reason=reason)
        elif f.get("remove"):
            s.registry.set_alias(caller, name, f.get("remove", ""), remove=True, reason=reason)
        else:
            s.registry.set_alias(caller, ref, f.get("alias", "").strip(), reason=reason)

    return await _act(
        request,
        changes,
        done=f"/ui/models/{quote(name)}/{version}#{'approvals' if change in ('sign', 'request') else 'moves'}",
        template="version.html",
        build=lambda s, c: views.version(s, c, name, version),
    )


@router.get("/evidence/models/{name}/{version}")
def model_evidence(request: Request, name: str, version: int) -> Response:
    """The version's release file as `medops evidence model` renders it (auditors, admins; audited)."""
    from medops.evidence import render

    viewer = _viewer(request)
    if viewer is None:
        return _to_login(request)
    try:
        evidence = services(request).evidence.model(viewer.caller, f"{name}:{version}")
    except MedopsError as exc:
        return _render(request, "refused.html", viewer, status=exc.http_status, message=exc.message)
    return HTMLResponse(render.html(evidence.document), headers=SECURITY_HEADERS)


@router.get("/alerts")
def alerts(request: Request, state: str | None = None) -> Response:
    return _page(request, "alerts.html", lambda s, c: views.alerts(s, c, state))


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(request: Request, alert_id: str, action: str) -> Response:
    """Acknowledge or resolve an alert, with the reason the form requires."""
    if action not in ("acknowledge", "resolve"):
        return Response(status_code=404)

    def acts(s: Services, caller: Caller, f: dict[str, str]) -> None:
        act = s.monitoring.acknowledge if action == "acknowledge" else s.monitoring.resolve
        act(caller, alert_id, f.get("reason", ""))

    return await _act(
        request,
        acts,
        done=f"/ui/alerts#alert-{quote(alert_id)}",
        template="alerts.html",
        build=lambda s, c: views.alerts(s, c, None),
    )


@router.get("/audit")
def audit(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    entity: str | None = None,
    below: int | None = None,
    verify: bool = False,
) -> Response:
    filters = {"actor": actor or "", "action": action or "", "entity": entity or ""}
    return _page(request, "audit.html", lambda s, c: views.audit(s, c, filters, below, verify))


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


@router.post("/admin/users")
async def add_user(request: Request) -> Response:
    """A new user with the roles ticked; the admin tells them the first password out of band."""

    def adds(s: Services, caller: Caller, f: dict[str, str]) -> None:
        username, full_name = f.get("username", "").strip(), f.get("full_name", "").strip()
        roles = parse_roles(f.get("roles"))
        s.identity.add_user(caller, username, full_name, f.get("password", ""), roles, reason=_reason(f))

    return await _act(request, adds, done="/ui/admin#users", template="admin.html", build=views.admin)


@router.post("/admin/users/{username}/{action}")
async def change_user(request: Request, username: str, action: str) -> Response:
    """Grant or revoke one role, disable or enable a user: each with the admin's reason, audited."""
    if action not in ("grant", "revoke", "disable", "enable"):
        return Response(status_code=404)

    def changes(s: Services, caller: Caller, f: dict[str, str]) -> None:
        if action in ("grant", "revoke"):
            act = s.identity.grant if action == "grant" else s.identity.revoke_role
            act(caller, username, parse_role(f.get("role", "")), reason=_reason(f))
        else:
            (s.identity.disable if action == "disable" else s.identity.enable)(caller, username, reason=_reason(f))

    done = f"/ui/admin#user-{quote(username)}"
    return await _act(request, changes, done=done, template="admin.html", build=views.admin)


@router.post("/admin/tokens")
async def create_token(request: Request) -> Response:
    """A new API token: its secret is on the page this once and stored nowhere (only its hash is kept)."""
    viewer, f = await _form(request)
    if viewer is None:
        return _to_login(request)
    try:
        days = _days(f.get("expires_in_days", ""))
        made, secret = await run_in_threadpool(
            services(request).identity.create_token,
            viewer.caller,
            f.get("name", "").strip(),
            username=f.get("user", "").strip() or None,
            expires_in_days=days,
            reason=_reason(f),
        )
    except MedopsError as exc:
        return await run_in_threadpool(_page, request, "admin.html", views.admin, error=exc)
    return await run_in_threadpool(_page, request, "admin.html", views.admin, made=made, secret=secret)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str) -> Response:
    def revokes(s: Services, caller: Caller, f: dict[str, str]) -> None:
        s.identity.revoke_token(caller, token_id, reason=_reason(f))

    return await _act(request, revokes, done="/ui/admin#tokens", template="admin.html", build=views.admin)


def _reason(fields: dict[str, str]) -> str | None:
    return fields.get("reason", "").strip() or None


def _days(text: str) -> float | None:
    """A token's lifetime in days from its form field; empty means it never expires."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(
            f"a token's lifetime is a number of days, not {text!r}", code="token_expiry_invalid"
        ) from None


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
