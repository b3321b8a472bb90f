"""The runner on a small DAG whose actions write files: skips, reasons, --from, --force, resume, leases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from medops.errors import Conflict, InvalidInput, PermissionDenied
from medops.pipelines import leases, records
from medops.pipelines.dag import Step
from medops.pipelines.fingerprints import file_digest
from medops.pipelines.runner import Runner, Stopped
from medops.store.lineage import walk
from medops.workspace import Workspace

STEPS = [
    Step("ingest.a", "ingest"),
    Step("ingest.b", "ingest"),
    Step("features", "features", ("ingest.a", "ingest.b")),
    Step("train", "train", ("features",)),
    Step("evaluate", "evaluate", ("train",)),
]


class FileActions:
    """Each ingest reads a file; every step's output is a counter of how often it ran."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.section: dict[str, Any] = {"train": {"trees": 100}}
        self.code = "v1"
        self.ran: list[str] = []
        self.made: dict[str, int] = {}
        self.fail: str | None = None
        self.stop: str | None = None
        self.deleted: set[str] = set()

    def inputs(self, step: Step, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "section": self.section.get(step.name)}
        if step.kind == "ingest":
            out["data"] = file_digest(self.folder / step.name, (previous or {}).get("data"))
        return out

    def run(self, step: Step, key: str, say: Callable[[str], None], *, fresh: bool = False) -> dict[str, Any]:
        if step.name == self.fail:
            raise InvalidInput(f"{step.name} broke")
        if step.name == self.stop:
            raise Stopped("a gate was not passed")
        self.ran.append(step.name)
        self.made[step.name] = self.made.get(step.name, 0) + 1
        return {"made": f"{step.name}#{self.made[step.name]}"}

    def gone(self, step: Step, outputs: Mapping[str, Any]) -> str | None:
        return "it was deleted" if outputs["made"] in self.deleted else None

    def nodes(self, step: Step, outputs: Mapping[str, Any]) -> list[str]:
        return [f"dataset:{outputs['made']}@0123456789ab"]


@pytest.fixture
def actions(tmp_path: Path) -> FileActions:
    for name in ("ingest.a", "ingest.b"):
        (tmp_path / name).write_text(f"rows of {name}\n")
    return FileActions(tmp_path)


def runner(ws: Workspace, actions: FileActions, actor: str = "admin") -> Runner:
    return Runner(ws, "proj", "f" * 64, STEPS, actions, actor=actor)


def states(record: records.RunRecord) -> dict[str, str]:
    return {s.step: s.state for s in record.steps}


def test_an_unchanged_pipeline_runs_nothing_and_names_the_run_that_made_each_output(
    workspace: Workspace, actions: FileActions
) -> None:
    first = runner(workspace, actions).run()
    assert first.state == "finished" and set(states(first).values()) == {"done"}
    assert [s.note for s in first.steps] == ["never run"] * 5
    second = runner(workspace, actions).run()
    assert set(states(second).values()) == {"skipped"} and actions.ran.count("train") == 1
    assert all(s.note == f"unchanged: same inputs as run {first.id[:12]}" for s in second.steps)
    third = runner(workspace, actions).run()  # still the first run's outputs, not the second's
    assert third.steps[0].note == f"unchanged: same inputs as run {first.id[:12]}"
    assert {s.outputs["made"] for s in third.steps if s.outputs} == {f"{s.name}#1" for s in STEPS}


@pytest.mark.parametrize(
    ("change", "runs", "note"),
    [
        ("section", {"train", "evaluate"}, "changed: section.trees"),
        ("data", {"ingest.a", "features", "train", "evaluate"}, "changed: data"),
        ("code", {s.name for s in STEPS}, "changed: code"),
    ],
)
def test_a_change_runs_the_step_it_reaches_says_what_changed_and_what_follows(
    workspace: Workspace, actions: FileActions, change: str, runs: set[str], note: str
) -> None:
    runner(workspace, actions).run()
    if change == "section":
        actions.section["train"] = {"trees": 120}
    elif change == "data":
        (actions.folder / "ingest.a").write_text("rows of ingest.a\nand one more\n")
    else:
        actions.code = "v2"
    plan = runner(workspace, actions).plan()
    first = next(d for d in plan if d.verdict == "run")
    assert first.note == note
    assert {d.step.name for d in plan if d.verdict in ("run", "after")} == runs
    actions.ran.clear()
    record = runner(workspace, actions).run()
    assert set(actions.ran) == runs
    assert {s.step for s in record.steps if s.state == "skipped"} == {s.name for s in STEPS} - runs


def test_a_touched_file_with_the_same_bytes_is_unchanged(workspace: Workspace, actions: FileActions) -> None:
    runner(workspace, actions).run()
    path = actions.folder / "ingest.b"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    assert {d.verdict for d in runner(workspace, actions).plan()} == {"skip"}


def test_targets_run_what_they_need_only_and_force_reruns_an_unchanged_step(
    workspace: Workspace, actions: FileActions
) -> None:
    record = runner(workspace, actions).run(["features"])
    assert [s.step for s in record.steps] == ["ingest.a", "ingest.b", "features"]
    record = runner(workspace, actions).run(["ingest"])  # a kind names each of its steps
    assert [s.step for s in record.steps] == ["ingest.a", "ingest.b"]
    record = runner(workspace, actions).run(force=["ingest.b"])
    assert states(record)["ingest.b"] == "done" and record.steps[1].note == "forced"
    assert states(record)["features"] == "done"  # a forced step's output changed (the counter), so it follows
    with pytest.raises(InvalidInput, match="no step 'trian'") as caught:
        runner(workspace, actions).plan(["trian"])
    assert caught.value.code == "pipeline_step_unknown"


def test_from_a_step_runs_it_and_what_follows_once_the_steps_before_it_finished(
    workspace: Workspace, actions: FileActions
) -> None:
    with pytest.raises(InvalidInput, match="features has never finished") as caught:
        runner(workspace, actions).run(start="train")
    assert caught.value.code == "pipeline_step_never_run"
    assert records.listing(workspace, "proj") == []  # refused before a run was recorded
    runner(workspace, actions).run()
    actions.code = "v2"
    record = runner(workspace, actions).run(start="train")
    assert [s.step for s in record.steps] == ["train", "evaluate"]  # the held steps ran nothing and left no step
    assert {d.verdict for d in runner(workspace, actions).plan(start="train")[:3]} == {"held"}


def test_outputs_that_are_gone_are_made_again(workspace: Workspace, actions: FileActions) -> None:
    runner(workspace, actions).run()
    actions.deleted.add("train#1")
    plan = {d.step.name: d for d in runner(workspace, actions).plan()}
    assert plan["train"].verdict == "run" and plan["train"].note == "same inputs, but it was deleted"
    runner(workspace, actions).run()
    assert actions.ran.count("train") == 2


def test_a_failed_run_is_resumed_from_its_failed_step(workspace: Workspace, actions: FileActions) -> None:
    actions.fail = "train"
    with pytest.raises(InvalidInput, match="train broke"):
        runner(workspace, actions).run()
    failed = records.listing(workspace, "proj")[0]
    assert failed.state == "failed" and failed.error == "train: train broke"
    assert states(failed) == {"ingest.a": "done", "ingest.b": "done", "features": "done", "train": "failed"}
    actions.fail = None
    resumed = runner(workspace, actions).run()
    assert resumed.resumes == failed.id and resumed.state == "finished"
    assert states(resumed) == {**{s: "skipped" for s in ("ingest.a", "ingest.b", "features")}, "train": "done",
                               "evaluate": "done"}  # fmt: skip
    assert actions.ran == ["ingest.a", "ingest.b", "features", "train", "evaluate"]  # nothing twice
    assert runner(workspace, actions).run().resumes is None  # a finished run is not resumed


def test_a_step_that_stops_the_pipeline_is_not_a_failure(workspace: Workspace, actions: FileActions) -> None:
    actions.stop = "evaluate"
    record = runner(workspace, actions).run()
    assert record.state == "stopped" and record.steps[-1].state == "stopped"
    assert record.steps[-1].note == "a gate was not passed"
    actions.stop = None
    again = runner(workspace, actions).run()
    assert states(again)["evaluate"] == "done"  # a stopped step has no outputs to reuse


def test_each_run_is_audited_and_linked_to_what_it_made(workspace: Workspace, actions: FileActions) -> None:
    from medops.audit import AuditFilter, list_events

    record = runner(workspace, actions).run()
    events = list_events(workspace.db, AuditFilter(entity_type="pipeline_run"), limit=10)
    assert {e.action for e in events} == {"pipeline.start", "pipeline.finish"}
    made = walk(workspace.db, records.pipeline_node(record.id), "down", depth=1)
    assert {e.dst for e in made} == {f"dataset:{s.name}#1@0123456789ab" for s in STEPS}


def test_running_needs_a_pipeline_role(workspace: Workspace, actions: FileActions) -> None:
    from medops.identity import Role

    workspace.users.add("admin", "val", "Val", "test-password-0123", [Role.VALIDATOR])
    with pytest.raises(PermissionDenied):
        runner(workspace, actions, actor="val").run()
    assert actions.ran == []


def test_two_runs_of_one_project_never_overlap(workspace: Workspace, actions: FileActions) -> None:
    held = leases.take(workspace.db, records.lease_name("proj"))
    assert held is not None
    with pytest.raises(Conflict, match="a pipeline run of proj is under way") as caught:
        runner(workspace, actions).run()
    assert caught.value.code == "pipeline_running" and actions.ran == []
    leases.release(workspace.db, held)
    assert runner(workspace, actions).run().state == "finished"


def test_a_run_whose_process_died_is_marked_interrupted_and_resumed(workspace: Workspace, actions: FileActions) -> None:
    """A run left 'running' by a killed process (its lease names a pid that no longer exists)."""
    runner(workspace, actions).run(["ingest.a"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = f"{__import__('socket').gethostname()}:{dead.stdout.strip()}:deadbeef"
    assert leases.take(workspace.db, records.lease_name("proj"), holder=holder) is not None
    run_id = records.start(workspace, "proj", "f" * 64, "manual", {}, None, actor="admin")
    records.begin_step(workspace, run_id, "proj", "ingest.b", 1, "k", {}, "never run")
    record = runner(workspace, actions).run()  # the dead holder's lease is taken at once, without waiting
    killed = records.get(workspace, run_id)
    assert killed.state == "interrupted" and killed.steps[0].state == "interrupted"
    assert record.resumes == run_id and states(record)["ingest.a"] == "skipped"
