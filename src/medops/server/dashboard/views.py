"""What each dashboard page shows, read from the services as the signed-in person.

Every page starts with ``IdentityService.reader``: a person whose roles read no records (a
prediction token's user) gets a refusal, audited, and no data. The charts of an evaluation are
drawn once per evaluation document (immutable, named by its SHA-256) and kept in memory.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import PurePath
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from medops.caller import Caller
from medops.registry.stages import PROMOTE_ROLES
from medops.registry.versions import REGISTER_ROLES, STAGES
from medops.server.dashboard import dataset_view
from medops.services import Services
from medops.services.evidence import EVIDENCE_ROLES


def when(value: Any) -> str:
    """A time as people read it on the page: UTC, to the minute."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def number(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _reads(services: Services, caller: Caller, what: str) -> None:
    services.identity.reader(caller, f"dashboard.{what}")


def home(services: Services, caller: Caller) -> dict[str, Any]:
    """Models with their production version and its evaluation, open alerts, and what awaits my signature."""
    _reads(services, caller, "home")
    awaiting = services.registry.awaiting(caller, services.identity.roles_of(caller))
    open_alerts = [a for a in services.monitoring.alerts(caller, limit=500) if a.state != "resolved"]
    return {
        "models": services.registry.models(caller),
        "alerts": open_alerts,
        "awaiting": [{"model": m, "version": v, "ref": f"{m}:{v}", "role": r} for m, v, r in awaiting],
    }


def model(services: Services, caller: Caller, name: str) -> dict[str, Any]:
    _reads(services, caller, "model")
    versions = services.registry.show(caller, name).versions
    history = services.registry.history(caller, name).moves
    return {"name": name, "versions": versions, "history": history}


def version(services: Services, caller: Caller, name: str, number_: int) -> dict[str, Any]:
    """One version: gates against their limits, subgroups, curves, signatures, and my signing form."""
    _reads(services, caller, "version")
    ref = f"{name}:{number_}"
    detail = services.registry.show(caller, ref)
    info = detail.versions[0]
    state = services.registry.approvals(caller, ref)
    evaluation = None
    if info.evaluation_id:
        shown = services.evaluation.show(caller, info.evaluation_id).info
        evaluation = {"info": shown, "gates": shown.gates, **_evaluation_view(services, shown.document)}
    signed = {d.role for d in state.decisions if d.valid}
    held = set(services.identity.roles_of(caller))
    mine = [r for r in info.required_approvals if r in held and r not in signed]
    return {
        "name": name,
        "info": info,
        "state": state,
        "evaluation": evaluation,
        "can_sign": mine if info.stage != "archived" else [],
        # the forms a person's roles could use; the service checks each change again
        "can_move": bool(held & {r.value for r in PROMOTE_ROLES}),
        "can_request": bool(held & {r.value for r in REGISTER_ROLES}) and bool(state.missing),
        "can_see_evidence": bool(held & {r.value for r in EVIDENCE_ROLES}),
        "stages": [s for s in STAGES[1:] if s != info.stage],
        # its moves, and the aliases taken off it
        "history": [
            m
            for m in services.registry.history(caller, name).moves
            if m.version == number_ or (m.version is None and m.previous == number_)
        ],
    }


def _evaluation_view(services: Services, document: str | None) -> dict[str, Any]:
    if not document:
        return {"subgroups": None, "charts": {}}
    return _drawn(document, services.platform.artifacts.read_bytes(document))


@lru_cache(maxsize=64)
def _drawn(digest: str, raw: bytes) -> dict[str, Any]:
    """The subgroup table and the curves of one evaluation document (read verified, so the digest names it)."""
    from medops.evaluation.report import report_view

    view = report_view(json.loads(raw))
    return {"subgroups": view["subgroups"], "charts": {k: Markup(v) for k, v in view["charts"].items()}}


def alerts(services: Services, caller: Caller, state: str | None) -> dict[str, Any]:
    _reads(services, caller, "alerts")
    return {"alerts": services.monitoring.alerts(caller, state=state, limit=200), "state": state}


AUDIT_PAGE = 100


def audit(
    services: Services,
    caller: Caller,
    filters: dict[str, str],
    below: int | None,
    verify: bool,
) -> dict[str, Any]:
    """The trail, newest first, filtered, a page at a time (``below``: older than that event); with
    ``verify``, the chain checked against its checkpoints now."""
    from dataclasses import replace

    from medops.audit import AuditFilter

    _reads(services, caller, "audit")
    where = AuditFilter.parse(filters["entity"] or None, filters["actor"] or None, filters["action"] or None)
    events = services.audit.log(caller, replace(where, below=below), limit=AUDIT_PAGE)
    check = services.audit.verify(caller) if verify else None
    query = {k: v for k, v in filters.items() if v}
    older = urlencode({**query, "below": events[-1].seq}) if len(events) == AUDIT_PAGE else None
    return {"events": events, "filters": filters, "check": check, "older": older, "export": urlencode(query)}


def runs(services: Services, caller: Caller, experiment: str | None, metric: str | None) -> dict[str, Any]:
    """Runs newest first, filtered as `medops runs list` filters them."""
    from medops.training import MetricFilter

    _reads(services, caller, "runs")
    filters = [MetricFilter.parse(metric)] if metric else []
    found = services.training.runs(caller, experiment=experiment or None, metrics=filters, limit=200)
    return {"runs": [r.info for r in found], "filters": {"experiment": experiment or "", "metric": metric or ""}}


def compare(services: Services, caller: Caller, ids: list[str]) -> dict[str, Any]:
    """Two or more runs side by side: parameters that differ, every metric, and the metrics logged over steps."""
    from medops.monitoring.report_charts import lines_svg

    _reads(services, caller, "compare")
    shown = [services.training.show(caller, run).info for run in ids[:6]]
    keys = sorted({k for r in shown for k in r.params})
    differ = [(k, [r.params.get(k, "") for r in shown]) for k in keys if len({r.params.get(k) for r in shown}) > 1]
    metrics = sorted({k for r in shown for k in r.metrics})
    charts: list[tuple[str, Markup]] = []
    for key in metrics:
        histories = {r.short: _history(services, caller, r.id, key) if key in r.metrics else [] for r in shown}
        if max(len(h) for h in histories.values()) < 2 or len(charts) == 4:
            continue
        steps = sorted({s["step"] for h in histories.values() for s in h})
        series = {run: [{s["step"]: s["value"] for s in h}.get(step) for step in steps] for run, h in histories.items()}
        svg = lines_svg([str(s) for s in steps], series, ylabel=key, salt=f"compare-{key}")
        charts.append((key, Markup(svg)))
    return {
        "runs": shown,
        "differ": differ,
        "metrics": [(k, [r.metrics.get(k) for r in shown]) for k in metrics],
        "inputs": [(r.short, r.inputs) for r in shown],
        "charts": charts,
    }


def _history(services: Services, caller: Caller, run: str, key: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = services.training.metric_history(caller, run, key)["steps"]
    return steps


def data(services: Services, caller: Caller, name: str | None) -> dict[str, Any]:
    _reads(services, caller, "data")
    return {"versions": [v.to_json() for v in services.data.versions(caller, name, limit=200)], "name": name}


def dataset(services: Services, caller: Caller, ref: str, other: str | None) -> dict[str, Any]:
    """One dataset version: its contract result, quarantined rows, de-identification report and profile."""
    _reads(services, caller, "dataset")
    doc = services.data.show(caller, ref).to_json()
    diff = services.data.diff(caller, other, ref).to_json() if other else None
    return {
        "doc": doc,
        "ref": ref,
        "contract": dataset_view.contract(doc.get("contract")),
        "deid": dataset_view.deidentification(doc.get("deid")),
        "profile": dataset_view.profile(doc.get("profile")),
        "diff": diff,
        "other": other or "",
    }


KIND_ORDER = (
    "alert",
    "pipeline",
    "file",
    "query",
    "dataset",
    "featureview",
    "run",
    "evaluation",
    "model",
    "predictions",
)


def lineage(services: Services, caller: Caller, entity: str) -> dict[str, Any]:
    """The graph around one node, drawn as SVG in columns by kind (sources on the left, predictions on the
    right); each node links to the graph around itself."""
    _reads(services, caller, "lineage")
    view = services.lineage.show(caller, entity)
    walked = [*view.upstream, *view.downstream]
    edges = [(e.src, e.dst, e.relation) for e in walked]
    # a source file is named by its hash: the ingest edge also says which file it was
    files = {
        e.src: PurePath(str(e.attrs["source"])).name
        for e in walked
        if e.src.startswith("file:") and e.attrs.get("source")
    }
    nodes = sorted({n for e in edges for n in e[:2]} | {view.node}, key=_kind_rank)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(_kind_rank(node)[0], []).append(node)
    width, height, gap_x, gap_y = 240, 34, 60, 14
    places: dict[str, tuple[int, int]] = {}
    for col, (_, members) in enumerate(sorted(columns.items())):
        for row, node in enumerate(members):
            places[node] = (20 + col * (width + gap_x), 20 + row * (height + gap_y))
    size = (
        max(x for x, _ in places.values()) + width + 20,
        max(y for _, y in places.values()) + height + 20,
    )
    return {
        "node": view.node,
        "entity": entity,
        "places": places,
        "edges": edges,
        "box": (width, height),
        "size": size,
        "label": lambda node: f"file: {files[node]}" if node in files else _node_label(node),
        "spoken": lambda node: f"file: {files[node]}" if node in files else node,  # the box's full name
    }


def _kind_rank(node: str) -> tuple[int, str]:
    kind = node.split(":", 1)[0]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), node)


def _node_label(node: str) -> str:
    kind, _, rest = node.partition(":")
    return f"{kind}: {rest[:20]}{'…' if len(rest) > 20 else ''}"


def monitoring(services: Services, caller: Caller, model_name: str | None) -> dict[str, Any]:
    """Monitored windows, newest first, and drift and performance over them as charts."""
    _reads(services, caller, "monitoring")
    found = services.monitoring.windows(caller, model_name or None, limit=100)
    ordered = sorted(found, key=lambda w: w.start)
    # a window's record never changes: the charts of one set of windows are drawn once
    drawn = _window_charts(tuple((w.label, tuple(sorted(w.metrics.items()))) for w in ordered))
    return {"windows": found, "charts": [(title, Markup(svg)) for title, svg in drawn], "model": model_name or ""}


@lru_cache(maxsize=32)
def _window_charts(windows: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]) -> list[tuple[str, str]]:
    from medops.monitoring.report_charts import lines_svg

    labels = [label for label, _ in windows]
    values = [dict(metrics) for _, metrics in windows]
    keys = sorted({k for m in values for k in m if k.endswith(".psi") or k.startswith("performance.")})
    charts = []
    for group, prefix in (("Feature drift (PSI)", "drift."), ("Performance", "performance.")):
        series = {k.removeprefix(prefix): [m.get(k) for m in values] for k in keys if k.startswith(prefix)}
        if series and labels:
            charts.append((group, lines_svg(labels, dict(list(series.items())[:6]), ylabel=group, salt=group)))
    return charts


def admin(services: Services, caller: Caller) -> dict[str, Any]:
    """Users with their roles, and API tokens (admins see everyone's; others their own). The forms are
    an admin's, but each change is the service's to allow: a form is only a way to ask."""
    from medops.identity.roles import Role

    _reads(services, caller, "admin")
    return {
        "users": services.identity.users(caller),
        "tokens": services.identity.tokens(caller),
        "roles": [r.value for r in Role],
        "is_admin": Role.ADMIN.value in services.identity.roles_of(caller),
    }
