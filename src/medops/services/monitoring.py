"""Monitoring as its users meet it: reference profiles, monitored windows, their verdicts.

Reading windows is open to every role that reads models (the auditor included); computing them
and writing profiles is a change, role-checked and audited in medops.monitoring. Every run first
drains what stopped servers left in their spools, so a window judges every prediction whose
response was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medops.caller import Caller
from medops.errors import InvalidInput, MedopsError
from medops.identity.roles import READ_ROLES as ROLES_THAT_READ
from medops.monitoring import alerts, profiles, windows
from medops.monitoring.alerts import AlertInfo
from medops.monitoring.channels import Channels
from medops.monitoring.profiles import ProfileInfo
from medops.monitoring.spec import MonitorSpec, governing_spec
from medops.monitoring.windows import Span, WindowInfo
from medops.platform import Platform
from medops.registry.versions import parse_ref
from medops.serving import prediction_log

log = logging.getLogger("medops.monitoring")
READ_ROLES = set(ROLES_THAT_READ)


@dataclass(frozen=True)
class MonitorRun:
    windows: list[WindowInfo]
    alerts: list[AlertInfo]  # opened by this run, with their deliveries
    exploratory: bool = False  # judged under another spec than the workspace's: nothing stored, no alert
    skipped: list[tuple[int, str]] = field(default_factory=list)  # versions not judged (no profile), and why
    retrained: list[Retrain] = field(default_factory=list)  # the pipeline runs its alerts started

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": [w.to_json() for w in self.windows],
            "alerts": [a.to_json() for a in self.alerts],
            "exploratory": self.exploratory,
            "skipped": [{"version": v, "why": why} for v, why in self.skipped],
            "retrained": [r.to_json() for r in self.retrained],
        }


@dataclass(frozen=True)
class Retrain:
    """What an alert of a ``retrain: true`` rule started: a pipeline run of the workspace's project file."""

    alert_id: str
    run_id: str | None
    state: str  # the pipeline run's: finished, stopped (a gate, or signatures awaited) or failed; or not_started
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"alert": self.alert_id, "pipeline_run": self.run_id, "state": self.state, "error": self.error}


@dataclass(frozen=True)
class Backfill:
    profiled: list[ProfileInfo]
    failed: list[tuple[str, str]]  # version, why

    def to_json(self) -> dict[str, Any]:
        return {
            "profiled": [p.to_json() for p in self.profiled],
            "failed": [{"version": v, "why": why} for v, why in self.failed],
        }


class MonitoringService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def profile(self, caller: Caller, ref: str) -> ProfileInfo:
        """Build and store the reference profile of ``NAME:VERSION``."""
        self.platform.users.require_role(caller.user, "monitor.profile", profiles.PROFILE_ROLES)  # before the work
        name, version = parse_ref(ref)
        if version is None:
            raise InvalidInput(f"{ref!r}: name the version", hint="for example readmission_30d:2")
        profile, evaluation = profiles.build_for_version(self.platform, name, version)
        return profiles.save(self.platform, name, version, profile, evaluation, actor=caller.user)

    def profile_quietly(self, caller: Caller, name: str, version: int) -> ProfileInfo | None:
        """``profile`` right after registration, which has committed: any failure leaves the version
        registered, is logged by its kind only (a message could quote data), and ``backfill`` builds it later."""
        try:
            return self.profile(caller, f"{name}:{version}")
        except Exception as exc:  # the registration stands whatever went wrong here
            reason = exc.code if isinstance(exc, MedopsError) and exc.code else type(exc).__name__
            log.warning("%s:%s: no reference profile yet (%s)", name, version, reason)
            return None

    def backfill(self, caller: Caller, progress: Callable[[str], None] | None = None) -> Backfill:
        """A profile for every trained version that has none."""
        self.platform.users.require_role(caller.user, "monitor.profile", profiles.PROFILE_ROLES)
        done: list[ProfileInfo] = []
        failed: list[tuple[str, str]] = []
        for name, version in profiles.missing(self.platform):
            ref = f"{name}:{version}"
            if progress is not None:
                progress(ref)
            try:
                done.append(self.profile(caller, ref))
            except MedopsError as exc:
                failed.append((ref, str(exc)))
        return Backfill(done, failed)

    def run(
        self,
        caller: Caller,
        model: str,
        *,
        window: str = "calendar-month",
        since: datetime | None = None,
        until: datetime | None = None,
        spec: MonitorSpec | None = None,
        channels: Channels | None = None,
        progress: Callable[[Span, int], None] | None = None,
        dataset: str | None = None,
        retrain: bool = True,
    ) -> MonitorRun:
        """Judge and store every complete window of ``model``'s prediction log, then open the alerts its rules
        raise and tell their channels (``channels``: the configured ones with their secrets; None: log only).

        With ``dataset`` (NAME or NAME@VERSION), that dataset version scored in batch is the window instead,
        judged for each version of the model that scored it (``model`` NAME:VERSION: for that version).

        The workspace's reviewed project file's monitor section governs (``spec`` None). Another ``spec``
        explores: its windows are judged and returned, never stored, and raise no alert, so a looser copy
        of the thresholds can't put a quiet record in place of the governed one. An alert of a rule that
        says ``retrain: true`` runs the project's pipeline, unless ``retrain`` is false (the pipeline's own
        monitor step: the run it is part of retrains).
        """
        self.platform.users.require_role(caller.user, "monitor.run", windows.MONITOR_ROLES)
        governing = governing_spec(self.platform)
        exploring = spec is not None and spec != governing
        spec = spec or governing
        prediction_log.recover(self.platform)
        skipped: list[tuple[int, str]] = []
        if dataset is not None:
            name, version = parse_ref(model)
            judged = self._dataset_windows(caller, name, version, dataset, spec, keep=not exploring, skipped=skipped)
            model = name
        else:
            judged = windows.run(
                self.platform,
                model,
                window,
                since=since,
                until=until,
                spec=spec,
                actor=caller.user,
                progress=progress,
                keep=not exploring,
                skipped=skipped,
            )
        if exploring:
            return MonitorRun(judged, [], exploratory=True, skipped=skipped)
        opened = alerts.evaluate(self.platform, model, spec, actor=caller.user, judged=judged)
        told = channels or Channels(spec.channels)
        rules = {r.name: r for r in spec.rules}
        delivered = []
        for alert in opened:
            wanted = list(rules[alert.rule].channels) if channels is not None else ["log"]
            for outcome in told.deliver(alert, wanted):
                alerts.record_delivery(
                    self.platform, alert.id, outcome.channel, outcome.delivered, outcome.attempts, outcome.detail
                )
            delivered.append(alerts.get(self.platform, alert.id))
        retrained = [self._retrain(caller, a, told) for a in delivered if retrain and rules[a.rule].retrain]
        return MonitorRun(judged, delivered, skipped=skipped, retrained=retrained)

    def _retrain(self, caller: Caller, alert: AlertInfo, told: Channels) -> Retrain:
        """The workspace's reviewed project file's pipeline, run for ``alert`` as ``caller``. The alert stands
        whatever happens here; a pipeline that can't start or fails says why in the result and the log."""
        from medops.evaluation.governing import project_path
        from medops.pipelines import records
        from medops.services.pipelines import PipelineService
        from medops.services.projects.project import load_project

        reason = f"alert {alert.rule} on {alert.model}:{alert.version}: {alert.condition}"
        try:
            project = load_project(project_path(self.platform.settings))
        except MedopsError as exc:
            log.warning("alert %s: retraining not started (%s)", alert.id[:12], exc.code)
            return Retrain(alert.id, None, "not_started", f"the workspace's project file can't run: {exc.message}")
        try:
            trigger = f"alert:{alert.id}"
            record = PipelineService(self.platform).run(caller, project, trigger=trigger, reason=reason, channels=told)
        except MedopsError as exc:
            log.warning("alert %s: the retraining pipeline failed (%s)", alert.id[:12], exc.code)
            ran = records.listing(self.platform, project.spec.name, limit=1)
            started = ran[0].id if ran and ran[0].trigger == f"alert:{alert.id}" else None
            return Retrain(alert.id, started, "failed" if started else "not_started", exc.message)
        return Retrain(alert.id, record.id, record.state)

    def _dataset_windows(
        self,
        caller: Caller,
        model: str,
        version: int | None,
        dataset: str,
        spec: MonitorSpec,
        *,
        keep: bool,
        skipped: list[tuple[int, str]],
    ) -> list[WindowInfo]:
        from medops.data.datasets import get

        info = get(self.platform.db, dataset)
        scored = windows.scored_by(self.platform, model, info.node)
        if version is None and not scored:
            raise InvalidInput(
                f"dataset {info.name}@{info.short} was not scored by any version of {model!r}",
                code="dataset_not_scored",
                hint=f"score it with a version of {model} first, or name the version to judge it with",
                model=model,
                dataset=f"{info.name}@{info.short}",
            )
        chosen = [version] if version is not None else scored
        return windows.run_dataset(
            self.platform, model, info, versions=chosen, spec=spec, actor=caller.user, keep=keep, skipped=skipped
        )

    def governing(self) -> MonitorSpec:
        """The monitor section that governs stored windows and alerts: the workspace's reviewed project file's."""
        return governing_spec(self.platform)

    def alerts(
        self, caller: Caller, *, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[AlertInfo]:
        self.platform.users.require_role(caller.user, "alert.list", READ_ROLES)
        return alerts.listing_alerts(self.platform, model=model, state=state, limit=limit)

    def alert(self, caller: Caller, alert_id: str) -> AlertInfo:
        self.platform.users.require_role(caller.user, "alert.show", READ_ROLES)
        return alerts.get(self.platform, alert_id)

    def acknowledge(self, caller: Caller, alert_id: str, reason: str) -> AlertInfo:
        return alerts.acknowledge(self.platform, alert_id, actor=caller.user, reason=reason)

    def resolve(self, caller: Caller, alert_id: str, reason: str) -> AlertInfo:
        return alerts.resolve(self.platform, alert_id, actor=caller.user, reason=reason)

    def report(
        self, caller: Caller, model: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> str:
        """The monitoring report's HTML: windows, charts over time, alerts (a read, open to every reader)."""
        from medops.monitoring.report import render

        self.platform.users.require_role(caller.user, "monitor.report", READ_ROLES)
        return render(self.platform, model, since, until)

    def windows(self, caller: Caller, model: str | None = None, *, limit: int = 100) -> list[WindowInfo]:
        self.platform.users.require_role(caller.user, "monitor.list", READ_ROLES)
        return windows.listing(self.platform, model, limit)

    def show(self, caller: Caller, window_id: str) -> tuple[WindowInfo, dict[str, Any]]:
        self.platform.users.require_role(caller.user, "monitor.show", READ_ROLES)
        info = windows.get(self.platform, window_id.strip())
        return info, windows.document(self.platform, info)
