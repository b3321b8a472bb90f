"""Telling people about an alert, or that a version waits for their signatures: the log, a webhook, email.

The message holds the alert (model, rule, severity, the metrics that crossed and their windows), or
the approval request (model version, the roles asked, who asked), never a row of data. A webhook
receives JSON POSTed with the headers ``X-Medops-Timestamp`` and ``X-Medops-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` under the shared secret: a receiver
recomputes it and refuses a stale timestamp, so a captured request can't be replayed later. A
connection error, a timeout, a 429 or a 5xx is retried with exponential backoff (0.5 s, 1 s,
2 s...); another 4xx is not (the receiver refused the message itself). Email goes through SMTP
(STARTTLS unless turned off, a login if the environment names one). Each channel's outcome is
recorded beside the alert; a channel that fails never fails the monitoring run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from medops.monitoring.spec import ChannelsSpec, EmailSpec, WebhookSpec

if TYPE_CHECKING:  # only named: the alerts module brings the windows' statistics (SciPy), which a run need not load
    from medops.monitoring.alerts import AlertInfo

log = logging.getLogger("medops.alerts")
BACKOFF_S = 0.5
RETRIED = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Outcome:
    channel: str
    delivered: bool
    attempts: int
    detail: str


@dataclass(frozen=True)
class Channels:
    """The configured channels with their secrets, read from the environment by the adapter."""

    spec: ChannelsSpec
    secrets: Mapping[str, str] = field(default_factory=dict)  # environment variable name -> value
    sleep: Callable[[float], None] = time.sleep
    backoff: float = BACKOFF_S

    def deliver(self, alert: AlertInfo, channels: Sequence[str]) -> list[Outcome]:
        return self.send(alert_message(alert), channels)

    def configured(self) -> list[str]:
        """Every channel this workspace can tell: the log, and the webhook and email when configured."""
        return ["log", *(["webhook"] if self.spec.webhook else []), *(["email"] if self.spec.email else [])]

    def send(self, message: Message, channels: Sequence[str]) -> list[Outcome]:
        out = []
        for channel in channels:
            if channel == "log":
                log.warning("%s", message.line)
                out.append(Outcome("log", True, 1, "logged"))
            elif channel == "webhook" and self.spec.webhook is not None:
                out.append(self._webhook(message, self.spec.webhook))
            elif channel == "email" and self.spec.email is not None:
                out.append(self._email(message, self.spec.email))
        return out

    def _webhook(self, message: Message, spec: WebhookSpec) -> Outcome:
        import httpx

        secret = self.secrets.get(spec.secret_env)
        if not secret:
            return Outcome("webhook", False, 0, f"no secret: set {spec.secret_env}")
        body = json.dumps(message.payload, sort_keys=True, separators=(",", ":")).encode()
        detail = ""
        for attempt in range(1, spec.attempts + 1):
            headers = {"Content-Type": "application/json", **signature_headers(secret, body)}
            try:
                answer = httpx.post(spec.url, content=body, headers=headers, timeout=spec.timeout)
                detail = f"HTTP {answer.status_code}"
                if answer.status_code < 300:
                    return Outcome("webhook", True, attempt, detail)
                if answer.status_code not in RETRIED:
                    return Outcome("webhook", False, attempt, detail)
            except httpx.HTTPError as exc:
                detail = type(exc).__name__
            if attempt < spec.attempts:
                self.sleep(self.backoff * 2 ** (attempt - 1))
        log.warning("%s: the webhook failed after %d attempts (%s)", message.key, spec.attempts, detail)
        return Outcome("webhook", False, spec.attempts, detail)

    def _email(self, notice: Message, spec: EmailSpec) -> Outcome:
        message = EmailMessage()
        message["Subject"] = f"[medops] {notice.subject}"
        message["From"] = spec.sender
        message["To"] = ", ".join(spec.to)
        message.set_content(notice.text)
        try:
            with smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout) as smtp:
                if spec.starttls:
                    smtp.starttls()
                if spec.username_env and spec.password_env:
                    smtp.login(self.secrets.get(spec.username_env, ""), self.secrets.get(spec.password_env, ""))
                refused = smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("%s: email failed (%s)", notice.key, type(exc).__name__)
            return Outcome("email", False, 1, type(exc).__name__)
        if refused:
            return Outcome("email", False, 1, f"refused for {len(refused)} recipient(s)")
        return Outcome("email", True, 1, f"sent to {len(spec.to)} recipient(s)")


@dataclass(frozen=True)
class Message:
    """One thing to tell, in each channel's form."""

    key: str  # what the log names it by: "alert 3f9a1c2e7b10", "approval request readmission_30d:2"
    subject: str  # an email's subject (after "[medops] ")
    text: str  # an email's body
    payload: dict[str, Any]  # a webhook's JSON
    line: str  # the log's line


def alert_message(alert: AlertInfo) -> Message:
    return Message(
        key=f"alert {alert.id[:12]}",
        subject=f"{alert.severity}: {alert.rule} on {alert.model}:{alert.version}",
        text=text(alert),
        payload=payload(alert),
        line=f"alert {alert.id[:12]}: {alert.severity} {alert.rule} on {alert.model}:{alert.version} "
        f"({alert.condition})",
    )


def approval_message(model: str, version: int, roles: Sequence[str], by: str, reason: str | None) -> Message:
    """A registered version waits for signatures: who is asked, by whom, why (no data, no evaluation detail)."""
    ref = f"{model}:{version}"
    asked = ", ".join(roles) or "nobody (every required role signed)"
    body = f"{ref} was registered by {by} and waits for the signatures of: {asked}.\n" + (
        f"Why: {reason}\n" if reason else ""
    )
    doc = {"model": model, "version": version, "roles": list(roles), "requested_by": by, "reason": reason}
    return Message(
        key=f"approval request {ref}",
        subject=f"signatures requested: {ref} ({asked})",
        text=body,
        payload={"type": "medops.approval_request", "approval_request": doc},
        line=f"approval request {ref}: {asked} asked to sign by {by}",
    )


def payload(alert: AlertInfo) -> dict[str, Any]:
    """What a webhook receives: the alert, without its deliveries."""
    doc = alert.to_json()
    doc.pop("deliveries")
    return {"type": "medops.alert", "alert": doc}


def signature_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if now is None else now))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Medops-Timestamp": stamp, "X-Medops-Signature": f"sha256={digest}"}


def verify_signature(secret: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: float = 300) -> bool:
    """A receiver's check (documented, and used by the tests): the signature matches and is recent."""
    stamp = headers.get("X-Medops-Timestamp", headers.get("x-medops-timestamp", ""))
    given = headers.get("X-Medops-Signature", headers.get("x-medops-signature", ""))
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance_s:
        return False
    expected = signature_headers(secret, body, float(stamp))["X-Medops-Signature"]
    return hmac.compare_digest(expected, given)


def text(alert: AlertInfo) -> str:
    lines = [
        f"{alert.severity.upper()}: rule {alert.rule} fired on {alert.model}:{alert.version}",
        f"condition: {alert.condition}",
        "",
    ]
    for breach in alert.breaches:
        values = ", ".join(f"{k} = {v:.4g}" for k, v in breach["metrics"].items())
        lines.append(f"window {breach['label']}: {values}")
    lines += ["", f"alert {alert.id}: acknowledge it when someone looks into it, resolve it once dealt with."]
    return "\n".join(lines)
