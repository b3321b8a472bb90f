"""Steps and their order: the DAG a project file makes, and the part of it a command asks for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medops.errors import ConfigError, InvalidInput


@dataclass(frozen=True)
class Step:
    name: str  # "ingest.patients", "features", "train"...
    kind: str  # what does it: "ingest", "features", "training_set", "train", "evaluate", "register"
    needs: tuple[str, ...] = ()
    what: str = ""  # one line for the plan


def ordered(steps: Sequence[Step]) -> list[Step]:
    """The steps in an order where each comes after what it needs (declaration order among equals)."""
    by_name = {s.name: s for s in steps}
    for s in steps:
        for need in s.needs:
            if need not in by_name:
                raise ConfigError(f"step {s.name} needs {need!r}, which the project makes no step for")
    out: list[Step] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(step: Step) -> None:
        if step.name in placed:
            return
        if step.name in visiting:
            raise ConfigError(f"the steps depend on each other in a circle through {step.name}")
        visiting.add(step.name)
        for need in step.needs:
            place(by_name[need])
        visiting.discard(step.name)
        placed.add(step.name)
        out.append(step)

    for s in steps:
        place(s)
    return out


def _matching(steps: Sequence[Step], name: str) -> list[Step]:
    """A step by its name, or every step of a kind ("ingest" is each ingest step)."""
    found = [s for s in steps if s.name == name] or [s for s in steps if s.kind == name]
    if not found:
        known = ", ".join(s.name for s in steps)
        raise InvalidInput(f"no step {name!r} in this project", code="pipeline_step_unknown", hint=f"steps: {known}")
    return found


def upstream(steps: Sequence[Step], roots: Sequence[Step]) -> set[str]:
    """The names of ``roots`` and everything they need, directly or not."""
    by_name = {s.name: s for s in steps}
    seen: set[str] = set()
    todo = [r.name for r in roots]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += list(by_name[name].needs)
    return seen


def downstream(steps: Sequence[Step], roots: Sequence[Step]) -> set[str]:
    """The names of ``roots`` and everything that needs them, directly or not."""
    seen = {r.name for r in roots}
    for s in ordered(steps):
        if any(n in seen for n in s.needs):
            seen.add(s.name)
    return seen


def select(steps: Sequence[Step], targets: Sequence[str] = (), start: str | None = None) -> tuple[list[Step], set[str]]:
    """The steps to consider, in order, and those among them held back by ``--from`` (their last outputs stand).

    ``targets`` (names or kinds) narrow the run to them and what they need; ``start`` runs from that
    step on: the steps it needs are not run, and must have finished once.
    """
    all_steps = ordered(steps)
    chosen = {s.name for s in all_steps}
    if targets:
        chosen = upstream(all_steps, [s for t in targets for s in _matching(all_steps, t)])
    held: set[str] = set()
    if start is not None:
        after = downstream(all_steps, _matching(all_steps, start))
        held = {name for name in chosen if name not in after}
    return [s for s in all_steps if s.name in chosen], held


def forced(steps: Sequence[Step], names: Sequence[str]) -> set[str]:
    return {s.name for n in names for s in _matching(steps, n)}
