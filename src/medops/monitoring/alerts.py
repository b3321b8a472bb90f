"""Alerts: rules judged on a model version's latest windows, one open alert per rule and model.

After windows are stored, each rule of the project file's monitor section is judged on the last
``windows`` windows of each model version monitored (the newest record of each window, in time
order), as of each window the run judged and as of now: when the rule's metric crossed its bound
in every one of them, an alert opens, unless one for that rule and model is not yet resolved (a
partial unique index holds that, so two runs at once can't open two). Acknowledging and resolving
need a user and a reason, and each move is an audited change. Alerts carry metric names and
values, never a row of data.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medops.clock import utc_now
from medops.errors import Conflict, InvalidInput, NotFound
from medops.identity.roles import Role
from medops.monitoring.spec import AlertRule, MonitorSpec
from medops.monitoring.windows import MONITOR_ROLES, WindowInfo, listing
from medops.platform import Platform
from medops.store.schema import Alert, AlertDelivery

RESPOND_ROLES = {Role.ML_ENGINEER, Role.DATA_SCIENTIST, Role.VALIDATOR, Role.CLINICAL_REVIEWER, Role.ADMIN}
STATES = ("open", "acknowledged", "resolved")


@dataclass(frozen=True)
class AlertInfo:
    id: str
    model: str
    version: int
    rule: str
    severity: str
    condition: str
    breaches: list[dict[str, Any]]
    window_id: str
    state: str
    opened_at: datetime
    opened_by: str
    acknowledged: dict[str, Any] | None
    resolved: dict[str, Any] | None
    deliveries: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "rule": self.rule,
            "severity": self.severity,
            "condition": self.condition,
            "breaches": self.breaches,
            "window": self.window_id,
            "state": self.state,
            "opened_at": self.opened_at.isoformat(),
            "opened_by": self.opened_by,
            "acknowledged": self.acknowledged,
            "resolved": self.resolved,
            "deliveries": self.deliveries,
        }


def matches(rule: AlertRule, metrics: dict[str, float]) -> dict[str, float]:
    """The window's metrics the rule names (itself, or those its pattern matches) that crossed its bound."""
    named = {k: v for k, v in metrics.items() if fnmatch.fnmatchcase(k, rule.metric)}
    return {k: v for k, v in sorted(named.items()) if rule.breached(v)}


def breaches(rule: AlertRule, history: list[WindowInfo]) -> list[dict[str, Any]] | None:
    """What each of the last ``rule.windows`` windows breached, or None unless every one of them did."""
    if len(history) < rule.windows:
        return None
    found = []
    for window in history[-rule.windows :]:
        crossed = matches(rule, window.metrics)
        if not window.judged or not crossed:
            return None
        found.append({"window": window.id, "label": window.label, "metrics": crossed})
    return found


def evaluate(
    ws: Platform, model: str, spec: MonitorSpec, *, actor: str, judged: Sequence[WindowInfo] = ()
) -> list[AlertInfo]:
    """Judge every rule on each monitored version of ``model``; open the alerts that fire (deduplicated).

    The rules are judged on the latest windows, and first as each window ``judged`` (by the run that
    calls this) closed, in time order: a run over a backlog of months raises what runs made month by
    month would have, in the month it began, even when the latest window is quiet again.
    """
    newest = listing(ws, model, limit=10_000)  # newest record of each window, newest first
    by_version: dict[tuple[int, str], list[WindowInfo]] = {}
    for window in reversed(newest):
        by_version.setdefault((window.version, window.source), []).append(window)
    fresh = {w.id for w in judged}
    opened: list[AlertInfo] = []
    for (version, _), history in sorted(by_version.items()):
        history.sort(key=lambda w: w.start)
        ends = [i + 1 for i, w in enumerate(history) if w.id in fresh] + [len(history)]
        for rule in spec.rules:
            for end in dict.fromkeys(ends):
                found = breaches(rule, history[:end])
                alert = None if found is None else _open(ws, model, version, rule, found, actor=actor)
                if alert is not None:
                    opened.append(alert)
                    break  # one unresolved alert per rule and model: later windows would only find it open
    return opened


def _open(
    ws: Platform, model: str, version: int, rule: AlertRule, found: list[dict[str, Any]], *, actor: str
) -> AlertInfo | None:
    if _unresolved(ws, model, rule.name) is not None or _raised_for(ws, model, version, rule.name, found[-1]["label"]):
        return None
    alert_id = uuid.uuid4().hex
    try:
        with ws.users.authorized(actor, "alert.open", "alert", alert_id, MONITOR_ROLES) as ch:
            ch.session.add(
                Alert(
                    id=alert_id,
                    model=model,
                    version=version,
                    rule=rule.name,
                    severity=rule.severity,
                    condition=f"{rule.condition} in {rule.windows} consecutive window(s)",
                    breaches=json.dumps(found, sort_keys=True),
                    window_id=found[-1]["window"],
                    state="open",
                    opened_at=utc_now(),
                    opened_by=actor,
                )
            )
            ch.session.flush()
            ch.after = {"model": f"{model}:{version}", "rule": rule.name, "severity": rule.severity, "breaches": found}
    except Conflict:  # another run opened it first (the index keeps one unresolved alert), or a real conflict
        if _unresolved(ws, model, rule.name) is not None:
            return None
        raise
    return get(ws, alert_id)


def _raised_for(ws: Platform, model: str, version: int, rule: str, label: str) -> bool:
    """True when an alert of this rule already fired on this version's window ``label``: a resolved alert
    does not fire again for the same window (judged again or not), only for a later one."""
    with ws.db.read() as session:
        query = select(Alert.breaches).where(Alert.model == model, Alert.version == version, Alert.rule == rule)
        return any(json.loads(b)[-1]["label"] == label for b in session.scalars(query))


def _unresolved(ws: Platform, model: str, rule: str) -> Alert | None:
    with ws.db.read() as session:
        query = select(Alert).where(Alert.model == model, Alert.rule == rule, Alert.state != "resolved")
        return session.scalars(query).first()


def acknowledge(ws: Platform, alert_id: str, *, actor: str, reason: str) -> AlertInfo:
    """Someone is looking at it: open -> acknowledged."""
    return _move(ws, alert_id, "acknowledged", ("open",), actor=actor, reason=reason)


def resolve(ws: Platform, alert_id: str, *, actor: str, reason: str) -> AlertInfo:
    """It is dealt with: open or acknowledged -> resolved; the rule may fire again after this."""
    return _move(ws, alert_id, "resolved", ("open", "acknowledged"), actor=actor, reason=reason)


def _move(ws: Platform, alert_id: str, to: str, allowed: tuple[str, ...], *, actor: str, reason: str) -> AlertInfo:
    found = get(ws, alert_id)
    action = "alert.acknowledge" if to == "acknowledged" else "alert.resolve"
    with ws.users.authorized(
        actor, action, "alert", found.id, RESPOND_ROLES, reason=reason, reason_required=True
    ) as ch:
        row = ch.session.get(Alert, found.id, with_for_update=True)
        assert row is not None
        if row.state not in allowed:
            raise Conflict(f"alert {found.id[:12]} is {row.state}", code="alert_state", hint=f"it can be {to} when "
                           f"{' or '.join(allowed)}")  # fmt: skip
        ch.before = {"state": row.state}
        now = utc_now()
        row.state = to
        if to == "acknowledged":
            row.acknowledged_at, row.acknowledged_by, row.acknowledged_reason = now, actor, reason
        else:
            row.resolved_at, row.resolved_by, row.resolved_reason = now, actor, reason
        ch.after = {"state": to}
    return get(ws, found.id)


def record_delivery(ws: Platform, alert_id: str, channel: str, delivered: bool, attempts: int, detail: str) -> None:
    with ws.db.write() as session:
        session.add(
            AlertDelivery(
                alert_id=alert_id, channel=channel, delivered=delivered, attempts=attempts, detail=detail, at=utc_now()
            )
        )


def get(ws: Platform, alert_id: str) -> AlertInfo:
    key = alert_id.strip()
    with ws.db.read() as session:
        row = session.get(Alert, key)
        if row is None and len(key) >= 6:
            found = list(session.scalars(select(Alert).where(Alert.id.startswith(key)).limit(2)))
            row = found[0] if len(found) == 1 else None
        if row is None:
            raise NotFound(f"no alert {alert_id!r}", code="alert_not_found")
        sent = session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == row.id).order_by(AlertDelivery.id))
        return _info(row, list(sent))


def listing_alerts(
    ws: Platform, *, model: str | None = None, state: str | None = None, limit: int = 100
) -> list[AlertInfo]:
    if state is not None and state not in STATES:
        raise InvalidInput(f"alert state {state!r} is not known", hint=f"one of {', '.join(STATES)}")
    query = select(Alert).order_by(Alert.opened_at.desc()).limit(limit)
    if model is not None:
        query = query.where(Alert.model == model)
    if state is not None:
        query = query.where(Alert.state == state)
    with ws.db.read() as session:
        return [_info(r, []) for r in session.scalars(query)]


def _info(row: Alert, sent: list[AlertDelivery]) -> AlertInfo:
    def move(at: datetime | None, by: str | None, reason: str | None) -> dict[str, Any] | None:
        return None if at is None else {"at": at.isoformat(), "by": by, "reason": reason}

    return AlertInfo(
        row.id,
        row.model,
        row.version,
        row.rule,
        row.severity,
        row.condition,
        list(json.loads(row.breaches)),
        row.window_id,
        row.state,
        row.opened_at,
        row.opened_by,
        move(row.acknowledged_at, row.acknowledged_by, row.acknowledged_reason),
        move(row.resolved_at, row.resolved_by, row.resolved_reason),
        [
            {
                "channel": d.channel,
                "delivered": d.delivered,
                "attempts": d.attempts,
                "detail": d.detail,
                "at": d.at.isoformat(),
            }
            for d in sent
        ],  # fmt: skip
    )
