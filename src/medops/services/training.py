"""Training runs as their readers meet them: the list, one run in full, two side by side, a reproduction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from medops.caller import Caller
from medops.clock import utc_now
from medops.errors import InvalidInput, NotFound
from medops.platform import Platform

if TYPE_CHECKING:  # the tracker's libraries load with the operations that use them
    from medops.training.reproduce import Reproduction
    from medops.training.tracking import Comparison, Ending, MetricFilter, RunInfo, Tracker

# how late a client may open a run it began (a week: a client that lost the server keeps its run and retries)
MAX_ELAPSED = 7 * 24 * 3600.0


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
class RunArtifact:
    run: str
    path: str
    sha256: str
    data: bytes


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

    def artifact(self, caller: Caller, run: str, path: str) -> RunArtifact:
        """A file a run logged, its bytes checked against the digest recorded with it before they are handed out."""
        from medops.training import Tracker

        found = Tracker(self.platform).get(run)
        listed = {a["path"]: a["digest"] for a in found.artifacts}
        if path not in listed:
            raise NotFound(
                f"run {found.short} logged no artifact {path!r}; it logged: {', '.join(sorted(listed)) or 'none'}"
            )
        return RunArtifact(found.id, path, listed[path], self.platform.artifacts.read_bytes(listed[path]))

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

    # --- a run logged through the platform API --------------------------------------------

    @cached_property
    def _tracker(self) -> Tracker:
        """One tracker for the service's life: it looks for abandoned runs once per heartbeat interval, not per run."""
        from medops.training import Tracker

        return Tracker(self.platform)

    def start_run(
        self,
        caller: Caller,
        experiment: str,
        name: str | None = None,
        *,
        seed: int | None = None,
        parent: str | None = None,
        environment: str | None = None,
        host: str | None = None,
        run_id: str | None = None,
        elapsed: float = 0.0,
        ending: Ending | None = None,
    ) -> RunSummary:
        """Open a run for a client that logs from elsewhere: its environment lock and host are the client's.

        The client may name the run (``run_id``) and open it late, ``elapsed`` seconds (by its own
        monotonic clock, so no clock skew enters) after it began; with its ``ending`` too, a short run
        is recorded whole in one transaction.
        """
        if not 0.0 <= elapsed <= MAX_ELAPSED:  # NaN fails both
            raise InvalidInput(
                f"a run opened late says how long ago it began: 0 to {MAX_ELAPSED:g} seconds, not {elapsed!r}"
            )
        if ending is not None and run_id is None:
            raise InvalidInput("a run recorded whole is named by its client: give its id")
        tracker = self._tracker
        digest = self.platform.artifacts.put((environment or "").encode())
        started_at = utc_now() - timedelta(seconds=elapsed) if run_id is not None or elapsed else None
        info = tracker.open_row(
            experiment,
            name,
            seed=seed,
            parent=parent,
            actor=caller.user,
            env_digest=digest,
            host=host,
            run_id=run_id,
            started_at=started_at,
            ending=ending,
        )
        return RunSummary(info)

    def log(
        self,
        caller: Caller,
        run: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[tuple[str, int, float, datetime]] = (),
    ) -> int:
        """Parameters, tags and metric values of the caller's running run, in one transaction; returns the values."""
        self._tracker.log_batch(run, caller.user, params or {}, tags or {}, metrics)
        return len(params or {}) + len(tags or {}) + len(metrics)

    def heartbeat(self, caller: Caller, run: str) -> None:
        self._tracker.beat(run, caller.user)

    def end_run(self, caller: Caller, run: str, ending: Ending) -> RunSummary:
        """End the caller's run; its last values, if sent with the end, in the same transaction."""
        tracker = self._tracker
        tracker.finish(run, caller.user, ending)
        return RunSummary(tracker.get(run, full=False))  # a summary shows metrics and tags only

    def compare(self, caller: Caller, a: str, b: str) -> RunComparison:
        from medops.training import Tracker

        return RunComparison(Tracker(self.platform).compare(a, b))

    def reproduce(self, caller: Caller, run: str) -> RunReproduction:
        """Train again from the run's recorded data version, settings and seed, as the caller."""
        from medops.training import Tracker
        from medops.training.reproduce import reproduce

        return RunReproduction(reproduce(Tracker(self.platform), run, actor=caller.user))
