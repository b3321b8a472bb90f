"""Pipelines: run the project file's steps, skipping what is unchanged; the history of those runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medops.caller import Caller
from medops.identity import Role
from medops.pipelines import records
from medops.pipelines.dag import Step
from medops.pipelines.runner import Decision, Event, Runner
from medops.platform import Platform
from medops.services.pipeline_steps import ProjectActions, project_steps
from medops.services.projects.project import LoadedProject

READ_ROLES = set(Role) - {Role.PREDICTOR}


class PipelineService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def steps(self, caller: Caller, project: LoadedProject) -> list[Step]:
        return project_steps(project)

    def _runner(self, caller: Caller, project: LoadedProject, trigger: str, reason: str | None) -> Runner:
        actions = ProjectActions(self.platform, project, caller, reason=reason)
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
        return self._runner(caller, project, "manual", None).plan(targets, start, force)

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
    ) -> records.RunRecord:
        """Run the steps (``targets`` and what they need; from ``start`` on), each as ``caller``, whose
        roles each step checks as its own command would."""
        runner = self._runner(caller, project, trigger, reason)
        return runner.run(targets, start, force, on=on, say=say)

    def runs(self, caller: Caller, project: str | None = None, limit: int = 50) -> list[records.RunRecord]:
        self.platform.users.require_role(caller.user, "pipeline.list", READ_ROLES)
        return records.listing(self.platform, project, limit)

    def show(self, caller: Caller, ref: str) -> records.RunRecord:
        self.platform.users.require_role(caller.user, "pipeline.show", READ_ROLES)
        return records.get(self.platform, ref)
