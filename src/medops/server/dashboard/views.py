"""What each dashboard page shows, read from the services as the signed-in person.

Every page starts with ``IdentityService.reader``: a person whose roles read no records (a
prediction token's user) gets a refusal, audited, and no data. The charts of an evaluation are
drawn once per evaluation document (immutable, named by its SHA-256) and kept in memory.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from medops.caller import Caller
from medops.services import Services


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
    models = []
    for summary in services.registry.models(caller):
        versions = services.registry.show(caller, summary.name).versions
        production = next((v for v in versions if v.stage == "production"), None)
        passed = None
        if production is not None and production.evaluation_id:
            passed = services.evaluation.show(caller, production.evaluation_id).info.passed
        models.append({"name": summary.name, "versions": summary.versions, "production": production, "passed": passed})
    open_alerts = [a for a in services.monitoring.alerts(caller, limit=500) if a.state != "resolved"]
    return {"models": models, "alerts": open_alerts, "awaiting": awaiting(services, caller)}


def awaiting(services: Services, caller: Caller) -> list[dict[str, Any]]:
    """Versions not archived that need a signature for a role I hold and have no valid one for it yet."""
    mine = set(services.identity.roles_of(caller))
    found = []
    for summary in services.registry.models(caller):
        for info in services.registry.show(caller, summary.name).versions:
            if info.stage == "archived":
                continue
            wanted = [r for r in info.required_approvals if r in mine]
            if not wanted:
                continue
            state = services.registry.approvals(caller, info.ref)
            signed = {d.role for d in state.decisions if d.valid}
            for role in wanted:
                if role not in signed:
                    found.append({"ref": info.ref, "model": info.model, "version": info.version, "role": role})
    return found


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
    held = services.identity.roles_of(caller)
    mine = [r for r in info.required_approvals if r in held and r not in signed]
    return {
        "name": name,
        "info": info,
        "state": state,
        "evaluation": evaluation,
        "can_sign": mine if info.stage != "archived" else [],
        "history": [m for m in services.registry.history(caller, name).moves if m.version == number_],
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


def audit(
    services: Services, caller: Caller, actor: str | None, action: str | None, entity: str | None, verify: bool
) -> dict[str, Any]:
    """The trail, newest first, filtered; with ``verify``, the chain checked against its checkpoints now."""
    from medops.audit import AuditFilter

    _reads(services, caller, "audit")
    where = AuditFilter.parse(entity or None, actor or None, action or None, None, None)
    events = services.audit.log(caller, where, limit=200)
    check = services.audit.verify(caller) if verify else None
    return {
        "events": events,
        "filters": {"actor": actor or "", "action": action or "", "entity": entity or ""},
        "check": check,
    }
