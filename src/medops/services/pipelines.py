"""Pipelines: run the project file's steps, skipping what is unchanged; the history of those runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from medops.caller import Caller
from medops.errors import ConfigError, InvalidInput
from medops.identity.roles import READ_ROLES as ROLES_THAT_READ
from medops.pipelines import records
from medops.pipelines.dag import Step, select
from medops.pipelines.records import PIPELINE_ROLES
from medops.pipelines.runner import Decision, Event, Runner
from medops.pipelines.schedules import Schedule, Scheduler
from medops.platform import Platform
from medops.services.pipeline_steps import ProjectActions, project_steps
from medops.services.projects.project import LoadedProject

if TYPE_CHECKING:
    from medops.monitoring.channels import Channels
    from medops.monitoring.spec import MonitorSpec

READ_ROLES = set(ROLES_THAT_READ)
TRIGGER = re.compile(r"^[A-Za-z][A-Za-z0-9_:.@-]{0,127}$")  # manual, schedule:NAME, alert:ID


class PipelineService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def monitor_spec(self) -> MonitorSpec:
        """The governing monitor section, whose channels a run tells of its approval requests and alerts
        (without loading the monitoring service: deciding that nothing needs to run stays quick)."""
        from medops.monitoring.spec import governing_spec

        return governing_spec(self.platform)

    def steps(self, caller: Caller, project: LoadedProject) -> list[Step]:
        return project_steps(project)

    def _runner(
        self, caller: Caller, project: LoadedProject, trigger: str, actions: ProjectActions | None = None
    ) -> Runner:
        actions = actions or ProjectActions(self.platform, project, caller)
        return Runner(
            self.platform,
            project.spec.name,
            project.sha256,
            project_steps(project),
            actions,
            actor=caller.user,
            trigger=trigger,
        )

    def plan(
        self,
        caller: Caller,
        project: LoadedProject,
        targets: Sequence[str] = (),
        *,
        start: str | None = None,
        force: Sequence[str] = (),
    ) -> list[Decision]:
        """What ``run`` would do and why, doing nothing (a read: any reader may ask)."""
        self.platform.users.require_role(caller.user, "pipeline.plan", READ_ROLES)
        return self._runner(caller, project, "manual").plan(targets, start, force)

    def run(
        self,
        caller: Caller,
        project: LoadedProject,
        targets: Sequence[str] = (),
        *,
        start: str | None = None,
        force: Sequence[str] = (),
        trigger: str = "manual",
        reason: str | None = None,
        on: Event = lambda event, step, note: None,
        say: Callable[[str], None] = lambda message: None,
        channels: Channels | None = None,
        executor_url: str | None = None,
    ) -> records.RunRecord:
        """Run the steps (``targets`` and what they need; from ``start`` on), each as ``caller``, whose
        roles each step checks as its own command would. ``channels`` (with their secrets, from the
        adapter) are told of the approval requests a registration makes; the log always is. On a Dask
        executor (``executor_url``, else the workspace's setting) the heavy steps run on a worker."""
        if not TRIGGER.match(trigger):
            raise InvalidInput(
                f"{trigger!r} is not a trigger", hint="words, digits and ':._-', such as schedule:nightly"
            )
        from medops.backends import EXECUTORS

        executor = executor_url or self.platform.settings.executor
        EXECUTORS.find(executor)  # an unknown name is refused now, not at the first step that would use it
        actions = ProjectActions(self.platform, project, caller, reason=reason, channels=channels, executor=executor)
        try:
            return self._runner(caller, project, trigger, actions).run(targets, start, force, on=on, say=say)
        finally:
            actions.close()  # the executor, if a step opened one

    def scheduler(
        self,
        caller: Caller,
        project: LoadedProject,
        *,
        again: Callable[[], Caller] | None = None,
        reason: str | None = None,
        channels: Channels | None = None,
    ) -> Scheduler:
        """The project's schedules, each due time run with the trigger ``schedule:NAME`` as the caller
        ``again`` proves at that time (the credential is checked anew: a revoked token runs nothing),
        else as ``caller``."""
        self.platform.users.require_role(caller.user, "pipeline.schedule", PIPELINE_ROLES)  # before waiting for hours
        schedules = {
            name: Schedule(name, spec.cron, spec.timezone, tuple(spec.steps))
            for name, spec in project.spec.schedules.items()
        }
        if not schedules:
            raise ConfigError(f"{project.path} declares no schedules", hint="add a schedules section (see docs)")
        for spec in schedules.values():  # a misspelt step fails now, not at two in the morning
            select(project_steps(project), spec.steps)

        def fire(schedule: Schedule, due_at: datetime) -> tuple[str | None, str]:
            why = reason or f"schedule {schedule.name} due {due_at.isoformat()}"
            who = again() if again is not None else caller.anew()
            trigger = f"schedule:{schedule.name}"
            record = self.run(who, project, schedule.steps, trigger=trigger, reason=why, channels=channels)
            return record.id, record.state

        return Scheduler(self.platform, project.spec.name, schedules, fire)

    def runs(self, caller: Caller, project: str | None = None, limit: int = 50) -> list[records.RunRecord]:
        self.platform.users.require_role(caller.user, "pipeline.list", READ_ROLES)
        return records.listing(self.platform, project, limit)

    def show(self, caller: Caller, ref: str) -> records.RunRecord:
        self.platform.users.require_role(caller.user, "pipeline.show", READ_ROLES)
        return records.get(self.platform, ref)
