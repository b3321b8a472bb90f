"""Alerts on both backends: rules judged on consecutive windows, one unresolved alert per rule and
model, acknowledged and resolved with reasons (audited), and their channels: the log, a signed
webhook retried after a 500, email through a real SMTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from medops.audit import AuditFilter, list_events
from medops.caller import Caller
from medops.clock import utc_now
from medops.errors import Conflict, InvalidInput, MedopsError, PermissionDenied
from medops.monitoring import alerts
from medops.monitoring.alerts import AlertInfo
from medops.monitoring.channels import Channels, verify_signature
from medops.monitoring.spec import AlertRule, MonitorSpec
from medops.services import Services
from medops.store.schema import Alert
from medops.workspace import Workspace
from tests.factories import free_port
from tests.monitoring.conftest import OCTOBER, govern_monitor

DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
SECRET = "webhook-secret-for-tests"


def run(ws: Workspace, spec: MonitorSpec | None = None, channels: Channels | None = None) -> Any:
    """A monitoring run under ``spec``, made the workspace's governing monitor section first."""
    govern_monitor(ws, spec or MonitorSpec())
    return Services(ws).monitoring.run(Caller("ming"), "readmission", since=OCTOBER, until=DECEMBER,
                                       channels=channels)  # fmt: skip


def test_the_default_rules_open_one_alert_per_rule_and_keep_it_until_resolved(monitored: tuple[Workspace, Any]) -> None:
    ws, version = monitored
    first = run(ws)
    assert sorted(a.rule for a in first.alerts) == ["feature_drift", "prediction_drift"]
    drift = next(a for a in first.alerts if a.rule == "feature_drift")
    assert drift.state == "open" and drift.version == version.version and drift.severity == "warning"
    assert drift.breaches == [{"window": first.windows[1].id, "label": "2026-11", "metrics": {"drift.features": 1.0}}]
    assert [d["channel"] for d in drift.deliveries] == ["log"] and drift.deliveries[0]["delivered"]
    assert run(ws).alerts == []  # the same windows judged again: nothing new while it is open
    service = Services(ws).monitoring
    with pytest.raises(PermissionDenied):
        service.acknowledge(Caller("audrey"), drift.id, "an auditor reads only")
    with pytest.raises(InvalidInput, match="needs a reason"):
        service.acknowledge(Caller("victor"), drift.id, " ")
    acked = service.acknowledge(Caller("victor"), drift.id[:12], "checking the intake of older patients")
    assert acked.state == "acknowledged" and acked.acknowledged and acked.acknowledged["by"] == "victor"
    with pytest.raises(Conflict, match="is acknowledged"):
        service.acknowledge(Caller("victor"), drift.id, "again")
    resolved = service.resolve(Caller("ming"), drift.id, "a new version is being trained on the older population")
    assert resolved.state == "resolved" and resolved.resolved and resolved.resolved["reason"].startswith("a new")
    assert run(ws).alerts == []  # resolved: it fires again only for a later window, not for November again
    assert [a.rule for a in service.alerts(Caller("audrey"), state="resolved")] == ["feature_drift"]
    moves = [e.action for e in list_events(ws.db, AuditFilter(entity_type="alert"))]
    assert moves.count("alert.open") == 2 and "alert.acknowledge" in moves and "alert.resolve" in moves
    assert "alert.acknowledge.denied" in moves


def test_consecutive_windows_patterns_and_the_index_that_keeps_one_unresolved_alert(
    monitored: tuple[Workspace, Any],
) -> None:
    ws, version = monitored
    twice = MonitorSpec(alerts=[AlertRule(name="drift_twice", metric="drift.features", above=0, windows=2)])
    assert run(ws, twice).alerts == []  # October was stable: one drifted month is not two
    low = MonitorSpec(alerts=[AlertRule(name="few_rows", metric="drift.age.psi", below=0.0)])
    assert run(ws, low).alerts == []
    pattern = MonitorSpec(alerts=[AlertRule(name="any_psi", metric="drift.*.psi", above=0.2, severity="critical")])
    [opened] = run(ws, pattern).alerts
    assert list(opened.breaches[0]["metrics"]) == ["drift.age.psi"] and opened.severity == "critical"
    assert opened.breaches[0]["metrics"]["drift.age.psi"] > 0.2
    with pytest.raises(Conflict, match="(?i)unique"), ws.db.write() as session:  # as if a second run raced the first
        session.add(Alert(id="f" * 32, model="readmission", version=version.version, rule="any_psi", severity="warning",
                          condition="-", breaches="[]", window_id="-", state="open", opened_at=utc_now(),
                          opened_by="ming"))  # fmt: skip
    # what an alert said is kept as it was, and an alert is never deleted, whoever connects
    for statement in ("UPDATE alerts SET severity = 'info'", "DELETE FROM alerts"):
        with pytest.raises(MedopsError), ws.db.write() as session:
            session.execute(text(statement))
    assert Services(ws).monitoring.alert(Caller("audrey"), opened.id).severity == "critical"
    # a looser copy of the rules, named for one run, explores: judged and shown, nothing stored, no alert
    service = Services(ws).monitoring
    stored = len(service.windows(Caller("audrey"), limit=1_000))
    quiet = MonitorSpec(drift={"psi": 5.0, "ks": 1.0, "wasserstein": 50.0}, alerts=[])
    explored = service.run(Caller("ming"), "readmission", since=OCTOBER, until=DECEMBER, spec=quiet)
    assert explored.exploratory and explored.alerts == [] and explored.windows[1].drifted == []
    assert {w.id for w in explored.windows} == {"-"} and len(service.windows(Caller("audrey"), limit=1_000)) == stored


def test_rules_are_checked_when_the_project_loads() -> None:
    with pytest.raises(ValueError, match="one of above or below"):
        AlertRule(name="x", metric="drift.features")
    with pytest.raises(ValueError, match="not configured under channels"):
        MonitorSpec.model_validate({"alerts": [{"name": "x", "metric": "m", "above": 1, "channels": ["email"]}]})
    with pytest.raises(ValueError, match="its own name"):
        MonitorSpec.model_validate({"alerts": [{"name": "x", "metric": "m", "above": 1}] * 2})
    metrics = {"quality.a.missing_increase": 0.2, "quality.b.missing_increase": 0.01, "drift.a.psi": 9.0}
    rule = AlertRule(name="x", metric="quality.*.missing_increase", above=0.05)
    assert alerts.matches(rule, metrics) == {"quality.a.missing_increase": 0.2}


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint: answers 500 to the first request, then 200; keeps what it verified."""

    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        verified = verify_signature(SECRET, body, dict(self.headers.items()))
        tampered = verify_signature(SECRET, body + b" ", dict(self.headers.items()))
        Receiver.calls.append({"verified": verified, "tampered": tampered, "body": json.loads(body)})
        if self.path.endswith("/gone"):
            self.send_response(404)
        else:
            self.send_response(500 if len(Receiver.calls) == 1 else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/medops"
    server.shutdown()
    server.server_close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_webhook_signed_and_retried_and_email_delivered(
    monitored: tuple[Workspace, Any], receiver: str, smtp: tuple[int, Inbox]
) -> None:
    ws, _ = monitored
    port, inbox = smtp
    spec = MonitorSpec.model_validate(
        {
            "alerts": [
                {"name": "drift", "metric": "drift.features", "above": 0, "channels": ["log", "webhook", "email"]}
            ],
            "channels": {
                "webhook": {"url": receiver, "secret_env": "HOOK_SECRET", "attempts": 3},
                "email": {"host": "127.0.0.1", "port": port, "sender": "medops@hospital.test",
                          "to": ["ml-oncall@hospital.test"], "starttls": False},
            },
        }
    )  # fmt: skip
    waits: list[float] = []
    channels = Channels(spec.channels, {"HOOK_SECRET": SECRET}, sleep=waits.append)
    [alert] = run(ws, spec, channels).alerts
    told = {d["channel"]: d for d in alert.deliveries}
    assert told["webhook"]["delivered"] and told["webhook"]["attempts"] == 2 and told["webhook"]["detail"] == "HTTP 200"
    assert waits == [0.5]  # one backoff, after the 500
    assert [c["verified"] for c in Receiver.calls] == [True, True] and not any(c["tampered"] for c in Receiver.calls)
    assert Receiver.calls[-1]["body"]["alert"]["id"] == alert.id
    assert told["email"]["delivered"] and len(inbox.messages) == 1
    mail = inbox.messages[0].content.decode()
    assert "readmission:1" in mail and "drift.features" in mail and "2026-11" in mail
    assert inbox.messages[0].rcpt_tos == ["ml-oncall@hospital.test"]
    # a receiver that refuses (404) is not asked again; a missing secret is said, nothing is sent unsigned
    Receiver.calls = [{"first": "already answered"}]  # the next request gets the receiver's second answer
    refused = MonitorSpec.model_validate(
        {
            "alerts": [{"name": "again", "metric": "drift.*.psi", "above": 0.2, "channels": ["webhook"]}],
            "channels": {"webhook": {"url": receiver, "secret_env": "HOOK_SECRET", "attempts": 3}},
        }
    )
    [alert] = run(ws, refused, Channels(refused.channels, {})).alerts
    assert alert.deliveries[0]["detail"] == "no secret: set HOOK_SECRET" and not alert.deliveries[0]["delivered"]
    assert len(Receiver.calls) == 1


def test_a_receiver_that_refuses_is_not_asked_again(receiver: str) -> None:
    spec = MonitorSpec.model_validate({"channels": {"webhook": {"url": receiver + "/gone", "attempts": 4}}})
    alert = AlertInfo("a" * 32, "readmission", 1, "drift", "warning", "drift.features > 0", [], "w", "open",
                      utc_now(), "ming", None, None, [])  # fmt: skip
    waits: list[float] = []
    [outcome] = Channels(spec.channels, {"MEDOPS_WEBHOOK_SECRET": SECRET}, sleep=waits.append).deliver(
        alert, ["webhook"]
    )
    assert (outcome.delivered, outcome.attempts, outcome.detail) == (False, 1, "HTTP 404") and waits == []
    assert len(Receiver.calls) == 1 and Receiver.calls[0]["verified"]


def test_the_documented_monitor_section_loads() -> None:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()
    [block] = re.findall(r"```yaml\n(.*?)```", text, re.S)
    spec = MonitorSpec.model_validate(yaml.safe_load(block)["monitor"])
    assert [r.name for r in spec.rules] == ["temperature_unit", "age_drift_twice"] and spec.channels.email is not None


def test_an_alert_resolved_in_sql_is_named_and_no_later_move_launders_it(monitored: tuple[Workspace, Any]) -> None:
    from medops.audit.state_check import CHANGED, check_state
    from medops.errors import IntegrityError
    from tests.audit.tamper import tampering

    ws, _ = monitored
    opened = run(ws).alerts
    assert check_state(ws.db).ok
    drift = next(a for a in opened if a.rule == "feature_drift")
    with tampering(ws) as db:  # a database owner makes the alert go away quietly
        db.sql(
            "UPDATE alerts SET state = 'resolved', resolved_by = 'ming', resolved_reason = 'ok' WHERE id = ?", drift.id
        )
    found = {p.to_json()["entity"]: p.kind for p in check_state(ws.db).problems}  # type: ignore[misc]
    assert found == {f"alert:{drift.id}": CHANGED}
    service = Services(ws).monitoring
    with pytest.raises(IntegrityError, match="changed outside medops"):
        service.acknowledge(Caller("victor"), drift.id, "building on the edit is refused")
    other = next(a for a in opened if a.id != drift.id)
    assert service.acknowledge(Caller("victor"), other.id, "the other alert is as the trail left it").acknowledged


def test_an_alert_of_a_retrain_rule_runs_the_workspace_s_pipeline(
    monitored: tuple[Workspace, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.services import pipelines as pipeline_service
    from medops.services.projects import project as project_module

    ws, _ = monitored
    rule = AlertRule(name="feature_drift", metric="drift.features", above=0.0, retrain=True)
    # the workspace's file here is a policy alone: the alert opens, the retraining says why it can't start
    first = run(ws, MonitorSpec(alerts=[rule]))
    assert [a.rule for a in first.alerts] == ["feature_drift"] and first.alerts[0].state == "open"
    [refused] = first.retrained
    assert refused.state == "not_started" and refused.run_id is None
    assert refused.error and refused.error.startswith("the workspace's project file can't run")

    asked: list[tuple[str, str, str]] = []

    def pipeline(self: Any, caller: Caller, project: Any, *args: Any, trigger: str, reason: str, **kw: Any) -> Any:
        asked.append((caller.user, trigger, reason))
        return type("Record", (), {"id": "p" * 32, "state": "stopped"})()

    monkeypatch.setattr(project_module, "load_project", lambda path: object())
    monkeypatch.setattr(pipeline_service.PipelineService, "run", pipeline)
    again = AlertRule(name="drift_retrain", metric="drift.features", above=0.0, retrain=True)
    quiet = AlertRule(name="drift_note", metric="drift.features", above=0.0)  # no retrain: nothing started
    second = run(ws, MonitorSpec(alerts=[again, quiet]))
    opened = {a.rule: a.id for a in second.alerts}
    assert set(opened) == {"drift_retrain", "drift_note"}
    assert [(r.alert_id, r.run_id, r.state) for r in second.retrained] == [
        (opened["drift_retrain"], "p" * 32, "stopped")
    ]
    assert asked == [("ming", f"alert:{opened['drift_retrain']}", asked[0][2])]
    assert "drift_retrain on readmission:1" in asked[0][2]


def test_an_approval_request_goes_through_the_same_channels(receiver: str, smtp: tuple[int, Inbox]) -> None:
    from medops.monitoring.channels import approval_message

    port, inbox = smtp
    spec = MonitorSpec.model_validate(
        {
            "channels": {
                "webhook": {"url": receiver, "secret_env": "HOOK_SECRET", "attempts": 3},
                "email": {"host": "127.0.0.1", "port": port, "sender": "medops@hospital.test",
                          "to": ["validators@hospital.test"], "starttls": False},
            }
        }
    )  # fmt: skip
    channels = Channels(spec.channels, {"HOOK_SECRET": SECRET}, sleep=lambda s: None)
    assert channels.configured() == ["log", "webhook", "email"]
    message = approval_message("readmission_30d", 2, ["clinical_reviewer", "validator"], "ming", "alert a1b2")
    told = {o.channel: o for o in channels.send(message, ["webhook", "email"])}
    assert told["webhook"].delivered and told["email"].delivered
    body = Receiver.calls[-1]["body"]
    assert Receiver.calls[-1]["verified"] and body["type"] == "medops.approval_request"
    assert body["approval_request"] == {"model": "readmission_30d", "version": 2, "roles": ["clinical_reviewer",
                                        "validator"], "requested_by": "ming", "reason": "alert a1b2"}  # fmt: skip
    import email
    from email import policy

    mail = email.message_from_bytes(inbox.messages[0].content, policy=policy.default)
    assert mail["Subject"] == "[medops] signatures requested: readmission_30d:2 (clinical_reviewer, validator)"
    assert "waits for the signatures of: clinical_reviewer, validator." in mail.get_content()
