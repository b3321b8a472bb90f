"""Training runs as their readers meet them: the list, one run in full, two side by side, a reproduction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medops.caller import Caller
from medops.errors import NotFound
from medops.platform import Platform

if TYPE_CHECKING:  # the tracker's libraries load with the operations that use them
    from medops.training.reproduce import Reproduction
    from medops.training.tracking import Comparison, MetricFilter, RunInfo


@dataclass(frozen=True)
class RunSummary:
    info: RunInfo

    def to_json(self) -> dict[str, Any]:
        r = self.info
        return {
            "id": r.id,
            "experiment": r.experiment,
            "name": r.name,
            "state": r.state,
            "started_at": r.started_at,
            "duration_s": r.duration,
            "by": r.created_by,
            "metrics": r.metrics,
            "tags": r.tags,
        }


@dataclass(frozen=True)
class RunDetail:
    info: RunInfo

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self.info))


@dataclass(frozen=True)
class RunComparison:
    diff: Comparison

    def to_json(self) -> dict[str, Any]:
        d = self.diff
        return {
            "a": d.a.id,
            "b": d.b.id,
            "params": d.params,
            "metrics": d.metrics,
            "inputs": d.inputs,
            "code": d.code,
            "environment": d.environment,
        }


@dataclass(frozen=True)
class RunReproduction:
    report: Reproduction

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {
            "original": r.original.id,
            "new": r.result.run_id,
            "reproduced": r.reproduced,
            "same_model": r.same_model,
            "metric_changes": r.metric_changes,
            "causes": r.causes,
        }


class TrainingService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def runs(
        self,
        caller: Caller,
        *,
        experiment: str | None = None,
        state: str | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricFilter] = (),
        trials: bool = False,
        limit: int = 50,
    ) -> list[RunSummary]:
        """Newest first, every filter applied in the database; runs whose process died show as killed."""
        from medops.training import Tracker

        found = Tracker(self.platform).list_runs(
            experiment=experiment, state=state, tags=tags, metrics=metrics, top_level=not trials, limit=limit
        )
        return [RunSummary(r) for r in found]

    def show(self, caller: Caller, run: str) -> RunDetail:
        from medops.training import Tracker

        return RunDetail(Tracker(self.platform).get(run))

    def metric_history(self, caller: Caller, run: str, key: str) -> dict[str, Any]:
        """Every value a run logged for one metric, by step."""
        from medops.training import Tracker

        tracker = Tracker(self.platform)
        found = tracker.get(run)
        steps = tracker.metric_history(found.id, key)
        if not steps and key not in found.metrics:
            raise NotFound(
                f"run {found.short} logged no metric {key!r}; it logged: {', '.join(sorted(found.metrics)) or 'none'}"
            )
        return {"run": found.id, "key": key, "steps": [{"step": s, "value": v} for s, v in steps]}

    def compare(self, caller: Caller, a: str, b: str) -> RunComparison:
        from medops.training import Tracker

        return RunComparison(Tracker(self.platform).compare(a, b))

    def reproduce(self, caller: Caller, run: str) -> RunReproduction:
        """Train again from the run's recorded data version, settings and seed, as the caller."""
        from medops.training import Tracker
        from medops.training.reproduce import reproduce

        return RunReproduction(reproduce(Tracker(self.platform), run, actor=caller.user))
