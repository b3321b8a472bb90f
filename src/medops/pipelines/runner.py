"""Run a project's steps: skip the unchanged, say why the others run, resume what was interrupted.

For each step, in order, the runner asks the step's action for its inputs (settings, data
digests, upstream outputs, code and environment), makes the cache key, and looks for a
finished record with that key whose outputs still exist: found, the step is skipped and says
which run made its outputs; not found, it runs and says what changed since its last run. A
run holds the project's lease for its whole length, so two runs of one project never
overlap; a run that was killed left a step marked running, which the next run marks
interrupted before it resumes: the finished steps are cache hits, so it goes on from the
first unfinished one. Steps are idempotent on their own side too (an action adopts what an
interrupted attempt with the same key already made), so nothing is made twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from medops.errors import Conflict, InvalidInput, MedopsError
from medops.pipelines import leases, records
from medops.pipelines.dag import Step, forced, select
from medops.pipelines.fingerprints import changes, step_key
from medops.platform import Platform
from medops.store.lineage import Edge, add_edges


class Stopped(Exception):
    """Raised by an action when the pipeline must stop here without failing (a gate was not passed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Actions(Protocol):
    def inputs(self, step: Step, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        """What the step's outcome depends on, read now (``previous``: its inputs last time, for digests)."""
        ...

    def run(self, step: Step, key: str, say: Callable[[str], None], *, fresh: bool = False) -> dict[str, Any]:
        """Do the step; return what it made (references, never data). ``fresh`` (a forced step): make it
        anew, without adopting what an interrupted attempt with the same key made."""
        ...

    def gone(self, step: Step, outputs: Mapping[str, Any]) -> str | None:
        """Why recorded outputs can't be reused (deleted, ended), or None when they can."""
        ...

    def nodes(self, step: Step, outputs: Mapping[str, Any]) -> list[str]:
        """The lineage nodes of what the step made."""
        ...


Verdict = Literal["run", "skip", "after", "held"]


@dataclass(frozen=True)
class Decision:
    step: Step
    verdict: Verdict
    note: str
    key: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    reuse: records.StepRecord | None = None  # the record whose outputs a skip reuses


Event = Callable[[str, Step, str], None]  # ("skip" | "start" | "done" | "stopped" | "failed", step, note)


class Runner:
    def __init__(
        self,
        ws: Platform,
        project: str,
        sha256: str,
        steps: Sequence[Step],
        actions: Actions,
        *,
        actor: str,
        trigger: str = "manual",
    ) -> None:
        self.ws, self.project, self.sha256, self.steps, self.actions = ws, project, sha256, list(steps), actions
        self.actor, self.trigger = actor, trigger

    def decide(self, step: Step, force: bool, pending: set[str], made: Mapping[str, Mapping[str, Any]]) -> Decision:
        """Whether ``step`` runs, and why. ``pending`` are the steps this run will (or may) run before it;
        ``made`` what the steps before it made in this run. What a step's needs made is one of its inputs,
        whatever its action reads, so a changed output upstream always reaches it."""
        waiting = [n for n in step.needs if n in pending]
        if waiting:
            return Decision(step, "after", f"runs if {', '.join(waiting)} changes what it made")
        last = records.latest_done(self.ws, self.project, step.name)
        inputs = self.actions.inputs(step, last.inputs if last else None)
        if step.needs:
            inputs["upstream"] = {n: self._made_by(n, made) for n in step.needs}
        key = step_key(inputs)
        if force:
            return Decision(step, "run", "forced", key, inputs)
        hit = (
            last if last is not None and last.key == key else records.latest_done(self.ws, self.project, step.name, key)
        )
        if hit is not None and hit.outputs is not None:
            why_not = self.actions.gone(step, hit.outputs)
            if why_not is None:
                made_by = str(hit.outputs.get("made_by", hit.run_id))
                return Decision(step, "skip", f"unchanged: same inputs as run {made_by[:12]}", key, inputs, hit)
            return Decision(step, "run", f"same inputs, but {why_not}", key, inputs)
        if last is None:
            return Decision(step, "run", "never run", key, inputs)
        changed = changes(last.inputs, inputs)
        return Decision(step, "run", "changed: " + ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else ""), key,
                        inputs)  # fmt: skip

    def _made_by(self, name: str, made: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
        """What step ``name`` made: in this run, else (held back, or not asked for) in its last finished run."""
        outputs = made.get(name)
        if outputs is None:
            last = records.latest_done(self.ws, self.project, name)
            outputs = last.outputs if last is not None else None
        return None if outputs is None else {k: v for k, v in outputs.items() if k != "made_by"}

    def plan(self, targets: Sequence[str] = (), start: str | None = None, force: Sequence[str] = ()) -> list[Decision]:
        """What a run would do, without doing it (``--dry-run``)."""
        chosen, held = select(self.steps, targets, start)
        forcing = forced(self.steps, force)
        pending: set[str] = set()
        made: dict[str, dict[str, Any]] = {}
        out = []
        for step in chosen:
            if step.name in held:
                out.append(Decision(step, "held", "not run (before --from): its last outputs stand"))
                continue
            decision = self.decide(step, step.name in forcing, pending, made)
            if decision.verdict in ("run", "after"):
                pending.add(step.name)
            elif decision.reuse is not None and decision.reuse.outputs is not None:
                made[step.name] = decision.reuse.outputs
            out.append(decision)
        return out

    def run(
        self,
        targets: Sequence[str] = (),
        start: str | None = None,
        force: Sequence[str] = (),
        *,
        on: Event = lambda event, step, note: None,
        say: Callable[[str], None] = lambda message: None,
    ) -> records.RunRecord:
        chosen, held = select(self.steps, targets, start)
        forcing = forced(self.steps, force)
        lease = leases.take(self.ws.db, records.lease_name(self.project))
        if lease is None:
            who = leases.holder(self.ws.db, records.lease_name(self.project)) or "another process"
            raise Conflict(
                f"a pipeline run of {self.project} is under way ({who.rsplit(':', 1)[0]})", code="pipeline_running"
            )
        keeper = leases.Keeper(self.ws.db, lease)
        try:
            records.mark_interrupted(self.ws, self.project, alive=False)  # we hold the lease: any "running" run is dead
            self._check_held(chosen, held)  # before a run is recorded: nothing to start from is not a run
            unfinished = records.to_resume(self.ws, self.project)
            requested = {"steps": list(targets), "from": start, "force": list(force)}
            run_id = records.start(
                self.ws,
                self.project,
                self.sha256,
                self.trigger,
                requested,
                unfinished.id if unfinished else None,
                actor=self.actor,
            )
            if unfinished is not None:
                at = next((s.step for s in unfinished.steps if s.state in ("failed", "interrupted")), None)
                say(f"resuming run {unfinished.short} ({unfinished.state}{f' at {at}' if at else ''})")
            state = self._steps(run_id, chosen, held, forcing, keeper, on, say)
            records.finish(self.ws, run_id, state, actor=self.actor)
            return records.get(self.ws, run_id)
        finally:
            keeper.close()

    def _check_held(self, chosen: list[Step], held: set[str]) -> None:
        needed = {n for s in chosen if s.name not in held for n in s.needs if n in held}
        for name in sorted(needed):
            if records.latest_done(self.ws, self.project, name) is None:
                raise InvalidInput(
                    f"step {name} has never finished, so there is nothing to start from after it",
                    code="pipeline_step_never_run",
                )

    def _steps(
        self,
        run_id: str,
        chosen: list[Step],
        held: set[str],
        forcing: set[str],
        keeper: leases.Keeper,
        on: Event,
        say: Callable[[str], None],
    ) -> str:
        made: dict[str, dict[str, Any]] = {}
        for position, step in enumerate(chosen):
            if step.name in held:
                continue
            if keeper.lost.is_set():
                raise Conflict(f"the pipeline lease of {self.project} was lost", code="pipeline_running")
            try:
                decision = self.decide(step, step.name in forcing, set(), made)
            except MedopsError as exc:  # its inputs can't be read (a source file gone): a failed step
                self._failed(run_id, step, position, {}, None, f"its inputs can't be read: {exc.message}", on)
                raise
            except Exception as exc:  # a bug: the type only (a message could quote data)
                self._failed(run_id, step, position, {}, None, f"its inputs can't be read: {type(exc).__name__}", on)
                raise
            if decision.verdict == "skip":
                assert decision.reuse is not None and decision.reuse.outputs is not None
                outputs = {
                    **decision.reuse.outputs,
                    "made_by": decision.reuse.outputs.get("made_by", decision.reuse.run_id),
                }
                step_id = records.begin_step(
                    self.ws, run_id, self.project, step.name, position, decision.key, decision.inputs, decision.note
                )
                records.end_step(self.ws, step_id, "skipped", outputs=outputs)
                made[step.name] = outputs
                on("skip", step, decision.note)
                continue
            step_id = records.begin_step(
                self.ws, run_id, self.project, step.name, position, decision.key, decision.inputs, decision.note
            )
            on("start", step, decision.note)
            assert decision.key is not None
            try:
                outputs = self.actions.run(step, decision.key, say, fresh=decision.note == "forced")
            except Stopped as stop:
                records.end_step(self.ws, step_id, "stopped", note=stop.reason)
                on("stopped", step, stop.reason)
                return "stopped"
            except MedopsError as exc:
                records.end_step(self.ws, step_id, "failed", error=exc.message)
                on("failed", step, exc.message)
                records.finish(self.ws, run_id, "failed", actor=self.actor, error=f"{step.name}: {exc.message}")
                raise
            except BaseException as exc:  # an interrupt or a bug: the type only (a message could quote data)
                state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                records.end_step(self.ws, step_id, state, error=type(exc).__name__)
                on("failed", step, type(exc).__name__)
                records.finish(self.ws, run_id, state, actor=self.actor, error=f"{step.name}: {type(exc).__name__}")
                raise
            outputs = {**outputs, "made_by": run_id}
            records.end_step(self.ws, step_id, "done", outputs=outputs)
            made[step.name] = outputs
            self._lineage(run_id, step, outputs)
            on("done", step, _summary(outputs))
        return "finished"

    def _failed(
        self,
        run_id: str,
        step: Step,
        position: int,
        inputs: dict[str, Any],
        key: str | None,
        message: str,
        on: Event,
    ) -> None:
        step_id = records.begin_step(self.ws, run_id, self.project, step.name, position, key, inputs, "inputs unread")
        records.end_step(self.ws, step_id, "failed", error=message)
        on("failed", step, message)
        records.finish(self.ws, run_id, "failed", actor=self.actor, error=f"{step.name}: {message}")

    def _lineage(self, run_id: str, step: Step, outputs: Mapping[str, Any]) -> None:
        nodes = self.actions.nodes(step, outputs)
        if not nodes:
            return
        edges = [Edge(records.pipeline_node(run_id), node, "produced", {"step": step.name}) for node in nodes]
        with self.ws.db.write() as session:
            add_edges(session, edges, self.actor)


def _summary(outputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in outputs.items() if k != "made_by" and isinstance(v, str | int | bool))
