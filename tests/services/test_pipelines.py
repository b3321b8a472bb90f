"""`medops run` on the readmission template: the real steps, skipped when unchanged, resumed after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from medops.caller import Caller
from medops.identity import Role
from medops.pipelines import records
from medops.services import Services, pipeline_steps
from medops.services.projects import load_project
from medops.services.projects.templates import scaffold
from medops.store.schema import DatasetVersion, ModelVersion, PipelineStep, Run
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD, run

pytestmark = pytest.mark.slow
PATIENTS = 400


@pytest.fixture
def project_ws(tmp_path: Path, metadata_url: str, pseudonym_key: None) -> tuple[Workspace, Path]:
    """A workspace governed by a readmission project of 400 synthetic patients; alice is a data scientist."""
    folder = tmp_path / "project"
    scaffold(folder, "readmission", patients=PATIENTS, seed=3)
    path = folder / "medops.yaml"
    text = path.read_text().replace("resamples: 2000", "resamples: 200")  # a quicker validation, the same steps
    path.write_text(text)
    ws = init_workspace(
        tmp_path / "ws",
        admin_username="admin",
        admin_full_name="Ada Admin",
        admin_password=PASSWORD,
        metadata_url=metadata_url,
        project_file=str(path),
    )
    ws.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
    return ws, path


def steps_of(record: records.RunRecord, state: str) -> list[str]:
    return [s.step for s in record.steps if s.state == state]


def test_the_project_runs_once_then_only_what_a_change_reaches(
    project_ws: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, path = project_ws
    pipelines = Services(ws).pipelines
    alice = Caller("alice")
    told: list[tuple[Any, list[str]]] = []

    class Spy:  # the channels a workspace configured, recording what they were told
        def configured(self) -> list[str]:
            return ["log", "webhook"]

        def send(self, message: Any, channels: list[str]) -> list[Any]:
            told.append((message, channels))
            return []

    first = pipelines.run(alice, load_project(path), channels=Spy())  # type: ignore[arg-type]
    names = [s.step for s in first.steps]
    assert names[0] == "monitor"  # the template's monitor section: production judged first (nothing logged yet)
    assert first.steps[0].outputs and first.steps[0].outputs["windows"] == 0 and first.steps[0].outputs["alerts"] == []
    assert names[1:7] == [f"ingest.{n}" for n in load_project(path).spec.sources]
    assert names[7:] == ["features", "training_set", "train", "evaluate", "register"]
    assert steps_of(first, "done")[:-1] == names[:-1] and first.state in ("finished", "stopped")
    evaluated = first.steps[-2].outputs
    assert evaluated is not None
    if evaluated["passed"]:  # a model that passed is registered; one that did not stops the run there
        assert first.state == "finished" and first.steps[-1].outputs == {"model": "readmission_30d", "version": 1,
                                                                         "made_by": first.id}  # fmt: skip
    else:
        assert first.state == "stopped" and "nothing registered" in first.steps[-1].note
    if first.state == "finished":  # the registration asked the policy's roles to sign, on the record
        [asked] = Services(ws).registry.approvals(alice, "readmission_30d:1").requests
        assert asked.by == "alice" and asked.roles == ["clinical_reviewer", "validator"]
        [(message, channels)] = told  # and told the configured channels (the log has it from the registry)
        assert channels == ["webhook"] and message.payload["approval_request"]["roles"] == asked.roles

    again = pipelines.run(alice, load_project(path))
    assert steps_of(again, "done") == [] and steps_of(again, "skipped") == names[: len(steps_of(again, "skipped"))]

    # data: a note edited changes that source only; no step reads the notes, so nothing follows
    notes = path.parent / "raw" / "notes.csv"
    notes.write_text(notes.read_text().replace("follow up in clinic", "follow up by phone", 1))
    record = pipelines.run(alice, load_project(path))
    assert steps_of(record, "done") == ["ingest.notes"] and record.steps[5].note == "changed: data"

    # a section of the file: the validation policy's bootstrap reaches evaluate (and register), not train
    path.write_text(path.read_text().replace("resamples: 200", "resamples: 150"))
    plan = {d.step.name: d for d in pipelines.plan(alice, load_project(path))}
    assert plan["train"].verdict == "skip" and plan["evaluate"].verdict == "run"
    assert plan["evaluate"].note == "changed: section.bootstrap.resamples"
    record = pipelines.run(alice, load_project(path))
    assert steps_of(record, "done")[0] == "evaluate" and "train" in steps_of(record, "skipped")

    # code: medops itself changed, so every step runs again; the data versions come out the same
    monkeypatch.setattr(pipeline_steps, "code_fingerprint", lambda: "another medops")
    record = pipelines.run(alice, load_project(path), ["training_set"])
    needed = [n for n in names[1:9] if n != "ingest.notes"]  # the training set reads neither notes nor monitoring
    assert steps_of(record, "done") == needed and all(s.note == "changed: code" for s in record.steps)
    with ws.db.read() as session:
        names_of = list(session.scalars(select(DatasetVersion.name)))
    assert names_of.count("notes") == 2 and names_of.count("readmission_training") == 1  # same bytes, same versions
    assert all(names_of.count(n) == 1 for n in names_of if n != "notes")

    # another file with a laxer policy: its evaluation is exploratory, so nothing is registered from it
    lax = path.with_name("lax.yaml")
    lax.write_text(path.read_text().replace("brier: {max: 0.25}", "brier: {max: 0.3}"))
    record = pipelines.run(alice, load_project(lax))
    assert record.state == "stopped" and "not the workspace's project file" in record.steps[-1].note

    # a forced step does its work again, not adopting the run its key already made
    trained = _count(ws, Run, Run.state == "finished", Run.experiment == "readmission")
    forced = pipelines.run(alice, load_project(path), ["train"], force=["train"])
    assert steps_of(forced, "done") == ["train"] and forced.steps[-1].note == "forced"
    assert _count(ws, Run, Run.state == "finished", Run.experiment == "readmission") == trained + 1


def test_the_cli_plans_and_runs_and_lists(project_ws: tuple[Workspace, Path], capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ws, path = project_ws
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    monkeypatch.chdir(path.parent)
    _, secret = ws.tokens.create("admin", "ci", username="alice", expires_in_days=1)
    monkeypatch.setenv("MEDOPS_TOKEN", secret)
    code, out, err = run(["run", "--dry-run", "ingest.patients"], capsys)
    assert code == 0, err
    assert "ingest.patients" in out and "never run" in out and "features" not in out
    code, out, err = run(["run", "ingest.patients"], capsys)
    assert code == 0, err
    assert "✓ run " in out and "1 ran, 0 unchanged" in out
    code, out, err = run(["run", "ingest.patients"], capsys)
    assert "0 ran, 1 unchanged" in out and "unchanged: same inputs as run" in out
    code, out, _ = run(["pipelines", "list"], capsys)
    assert code == 0 and out.count("alice") == 2
    latest = records.listing(ws, "readmission_30d")[0]
    code, out, _ = run(["pipelines", "show", latest.id[:12]], capsys)
    assert code == 0 and "skipped" in out and "ingest.patients" in out
    code, out, err = run(["retrain", "-r", "a new quarter of discharges"], capsys)  # the workspace's own file
    assert code in (0, 1), err  # 1: stopped at a gate, as a challenger may be
    retrained = records.listing(ws, "readmission_30d")[0]
    assert retrained.trigger == "retrain" and retrained.created_by == "alice"
    assert steps_of(retrained, "skipped")[0] == "ingest.patients"  # what the earlier run made stands
    code, _, err = run(["run", "nothing"], capsys)
    assert code != 0 and "no step 'nothing'" in err and "medops run --dry-run" in err


def _count(ws: Workspace, model: type, *where: object) -> int:
    with ws.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def test_a_run_killed_mid_step_resumes_there_and_makes_nothing_twice(project_ws: tuple[Workspace, Path]) -> None:
    ws, path = project_ws
    _, secret = ws.tokens.create("admin", "ci", username="alice", expires_in_days=1)
    env = {**os.environ, "MEDOPS_HOME": str(ws.settings.home), "MEDOPS_TOKEN": secret}
    process = subprocess.Popen(
        [sys.executable, "-m", "medops", "run"], cwd=path.parent, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120  # a bound on the wait, not a measurement
    try:
        while _count(ws, PipelineStep, PipelineStep.step == "train", PipelineStep.state == "running") == 0:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the run never reached its train step"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
    killed = records.listing(ws, "readmission_30d")[0]
    assert killed.state == "running"  # as the killed process left it

    resumed = Services(ws).pipelines.run(Caller("alice"), load_project(path))
    assert resumed.resumes == killed.id and records.get(ws, killed.id).state == "interrupted"
    assert steps_of(resumed, "skipped")[:8] == [s.step for s in killed.steps[:8]]  # what finished stands
    assert "train" in steps_of(resumed, "done")
    for name in load_project(path).spec.sources:  # one version of each source, one training set
        assert _count(ws, DatasetVersion, DatasetVersion.name == name) == 1
    assert _count(ws, Run, Run.state == "finished", Run.experiment == "readmission") == 1
    assert _count(ws, ModelVersion) <= 1
    done = [s.step for r in records.listing(ws, "readmission_30d") for s in r.steps if s.state == "done"]
    assert len(done) == len(set(done))  # each step did its work once


def test_a_schedule_runs_its_steps_as_the_caller_proven_at_that_time(project_ws: tuple[Workspace, Path]) -> None:
    from datetime import UTC, datetime, timedelta

    from medops.errors import AuthenticationFailed, InvalidInput, PermissionDenied

    ws, path = project_ws
    text = path.read_text()
    path.write_text(
        text + "\nschedules:\n  nightly: {cron: '0 2 * * *', timezone: Europe/Paris, steps: [ingest.patients]}\n"
    )
    pipelines = Services(ws).pipelines
    scheduler = pipelines.scheduler(Caller("alice"), load_project(path))
    scheduler.started_at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    fired = scheduler.tick(datetime(2026, 12, 2, 1, 30, tzinfo=UTC))
    assert len(fired) == 1 and fired[0].outcome == "finished"
    record = records.get(ws, str(fired[0].run_id))
    assert record.trigger == "schedule:nightly" and [s.step for s in record.steps] == ["ingest.patients"]
    assert record.created_by == "alice"

    def revoked() -> Caller:
        raise AuthenticationFailed("the token is not valid")

    scheduler = pipelines.scheduler(Caller("alice"), load_project(path), again=revoked)
    scheduler.started_at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    fired = scheduler.tick(datetime(2026, 12, 3, 1, 30, tzinfo=UTC) + timedelta(minutes=1))
    assert fired[0].outcome == "failed: the token is not valid" and fired[0].run_id is None

    ws.users.add("admin", "val", "Val", PASSWORD, [Role.VALIDATOR])
    with pytest.raises(PermissionDenied):
        pipelines.scheduler(Caller("val"), load_project(path))
    path.write_text(text + "\nschedules:\n  nightly: {cron: '0 2 * * *', steps: [trian]}\n")
    with pytest.raises(InvalidInput, match="no step 'trian'"):
        pipelines.scheduler(Caller("alice"), load_project(path))


def test_auto_promote_only_under_a_policy_without_signatures_and_by_who_may_promote(
    tmp_path: Path, metadata_url: str, pseudonym_key: None
) -> None:
    """A flat extract (NA tokens, ages over 90, repeat visits) whose policy names no signature and says
    auto_promote: a data scientist's run registers and stops; an ML engineer's run promotes, audited."""
    from medops.audit import AuditFilter, list_events
    from medops.registry import versions
    from tests.real_style import write_project

    path = write_project(tmp_path / "project")
    no_signatures = "    max_quarantined_share: 0.05\n    approvals: []\n    auto_promote: true\n"
    path.write_text(path.read_text().replace("    max_quarantined_share: 0.05\n", no_signatures))
    ws = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        metadata_url=metadata_url, project_file=str(path))  # fmt: skip
    ws.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
    ws.users.add("admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER])
    pipelines = Services(ws).pipelines
    first = pipelines.run(Caller("alice"), load_project(path))
    assert first.steps[-2].outputs and first.steps[-2].outputs["passed"], "the extract's model passes its gates"
    assert first.state == "stopped" and "auto_promote needs an ML engineer or admin" in first.steps[-1].note
    assert versions.get(ws, "pbc_mortality", 1).stage == "none"
    second = pipelines.run(Caller("ming"), load_project(path))
    assert second.state == "finished" and second.steps[-1].outputs["promoted"] is True  # type: ignore[index]
    assert versions.get(ws, "pbc_mortality", 1).stage == "production"
    assert _count(ws, ModelVersion) == 1  # the version the first run registered, not a second one
    promoted = list_events(ws.db, AuditFilter(entity_type="model", action="model.production"), limit=5)
    assert [(e.actor, e.entity_id) for e in promoted] == [("ming", "pbc_mortality:1")]
    denied = list_events(ws.db, AuditFilter(action="model.production.denied"), limit=5)
    assert [e.actor for e in denied] == ["alice"]  # the refused attempt is on the record too


def test_auto_promote_is_refused_where_the_policy_requires_signatures() -> None:
    from pydantic import ValidationError

    from medops.evaluation.spec import PolicySpec

    with pytest.raises(ValidationError, match="auto_promote: refused, this policy requires signatures"):
        PolicySpec(auto_promote=True)
    with pytest.raises(ValidationError, match="names no signature must say auto_promote: true"):
        PolicySpec(approvals=[])
    assert PolicySpec(approvals=[], auto_promote=True).auto_promote


def test_a_missing_source_file_is_named_with_its_line_and_fails_only_its_step(
    project_ws: tuple[Workspace, Path],
) -> None:
    from medops.errors import InvalidInput

    ws, path = project_ws
    (path.parent / "raw" / "notes.csv").unlink()
    with pytest.raises(InvalidInput, match=r"medops.yaml, line \d+: sources.notes.path: .*notes.csv can't be read"):
        Services(ws).pipelines.run(Caller("alice"), load_project(path), ["ingest"])
    failed = records.listing(ws, "readmission_30d")[0]
    assert failed.state == "failed" and steps_of(failed, "failed") == ["ingest.notes"]
    assert steps_of(failed, "done") == ["ingest.patients", "ingest.encounters", "ingest.observations",
                                        "ingest.medications"]  # fmt: skip


def test_a_forged_pipeline_record_does_not_register_a_failed_model(
    tmp_path: Path, metadata_url: str, pseudonym_key: None
) -> None:
    """An insider edits the pipeline's own records in SQL to say the evaluation passed: the register step
    reads the evaluation itself, so nothing is registered."""
    from sqlalchemy import update

    from tests.real_style import write_project

    path = write_project(tmp_path / "project")
    path.write_text(path.read_text().replace("auroc: {min: 0.6, check: ci_lower}", "auroc: {min: 0.99}"))
    ws = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        metadata_url=metadata_url, project_file=str(path))  # fmt: skip
    ws.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
    pipelines = Services(ws).pipelines
    first = pipelines.run(Caller("alice"), load_project(path))
    assert first.state == "stopped" and "did not pass" in first.steps[-1].note
    evaluated = first.steps[-2].outputs
    assert evaluated is not None and evaluated["passed"] is False
    forged = json.dumps({**evaluated, "passed": True})
    with ws.db.write() as session:
        session.execute(update(PipelineStep).where(PipelineStep.step == "evaluate").values(outputs=forged))
    again = pipelines.run(Caller("alice"), load_project(path))
    assert again.state == "stopped" and "did not pass" in again.steps[-1].note
    assert _count(ws, ModelVersion) == 0


def test_on_a_dask_executor_the_heavy_steps_run_on_a_worker(project_ws: tuple[Workspace, Path]) -> None:
    """Ingest, training set, train and evaluate go to a worker process, which opens the workspace itself;
    features (which sends its own partitions) and register (which tells the channels) stay here. A second
    run, local, finds every step unchanged: where a step ran is not part of what it made."""
    import os

    ws, path = project_ws
    pipelines = Services(ws).pipelines
    said: list[str] = []
    record = pipelines.run(Caller("alice"), load_project(path), say=said.append, executor_url="dask-local")
    assert record.state in ("finished", "stopped") and not steps_of(record, "failed")
    workers = [line for line in said if line.startswith("ran on ")]
    assert len(workers) == len(load_project(path).spec.sources) + 3  # six ingests, training set, train, evaluate
    assert all("(dask-local)" in line and f"pid {os.getpid()} " not in line for line in workers)
    again = pipelines.run(Caller("alice"), load_project(path))
    assert steps_of(again, "done") == [] and len(steps_of(again, "skipped")) == len(record.steps)
    from medops.errors import ConfigError

    with pytest.raises(ConfigError, match="bogus"):  # refused before anything runs, though nothing would use it
        pipelines.run(Caller("alice"), load_project(path), executor_url="bogus")


def test_the_monitor_step_judges_production_and_starts_no_second_run(demo_copy: Path) -> None:
    """In the demo's workspace (months of production logged, an alert open): `medops run monitor` judges
    what is new through the governed rules; an alert that retrains would be answered by this same run's
    later steps, so no other pipeline run starts."""
    with Workspace.open(demo_copy / "workspace") as ws:
        project = load_project(demo_copy / "project" / "medops.yaml")
        pipelines = Services(ws).pipelines
        before = len(records.listing(ws, "readmission_30d"))
        plan = pipelines.plan(Caller("ming"), project, ["monitor"])
        assert [d.step.name for d in plan] == ["monitor"] and plan[0].verdict == "run"
        said: list[str] = []
        record = pipelines.run(Caller("ming"), project, ["monitor"], say=said.append)
        assert record.state == "finished" and steps_of(record, "done") == ["monitor"]
        assert any("window(s) of readmission_30d" in line for line in said)
        assert len(records.listing(ws, "readmission_30d")) == before + 1  # this run only
        again = pipelines.run(Caller("ming"), project, ["monitor"])
        assert steps_of(again, "skipped") == ["monitor"]  # nothing logged since, the same month


def test_a_score_batch_runs_with_production_and_again_only_when_it_or_its_input_changes(
    tmp_path: Path, metadata_url: str, pseudonym_key: None
) -> None:
    """The flat extract's project with a `score` batch: the first run has nothing in production to score with
    (and says so, without stopping the training), auto-promotes its model; the next run scores the visits with
    it, into the file, in lineage; then nothing changes and it is skipped; a deleted output is made again."""
    from medops.store.lineage import walk
    from tests.real_style import write_project

    path = write_project(tmp_path / "project")
    share = "    max_quarantined_share: 0.05\n"
    text = path.read_text().replace(share, share + "    approvals: []\n    auto_promote: true\n")
    text += "score:\n  visits: {input: visits, output: scores/visits.parquet, keep: [patient_id]}\n"
    path.write_text(text)
    ws = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        metadata_url=metadata_url, project_file=str(path))  # fmt: skip
    ws.users.add("admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER])
    pipelines, ming = Services(ws).pipelines, Caller("ming")
    said: list[str] = []
    first = pipelines.run(ming, load_project(path), say=said.append)
    assert [s.step for s in first.steps] == ["ingest.visits", "score.visits", "train", "evaluate", "register"]
    assert first.state == "finished" and any(line.startswith("nothing scored: ") for line in said)
    second = pipelines.run(ming, load_project(path))
    assert steps_of(second, "done") == ["score.visits"] and second.steps[1].note.startswith("changed: model")
    scored = pq.read_table(tmp_path / "project" / "scores" / "visits.parquet")
    outputs = second.steps[1].outputs
    assert outputs and scored.num_rows == outputs["rows"] and "patient_id" in scored.column_names
    produced = walk(ws.db, f"pipeline:{second.id}", "down", depth=1)
    assert [e.dst for e in produced] == [f"predictions:{outputs['sha256']}"]
    assert steps_of(pipelines.run(ming, load_project(path)), "done") == []
    (tmp_path / "project" / "scores" / "visits.parquet").unlink()
    again = pipelines.run(ming, load_project(path))
    assert steps_of(again, "done") == ["score.visits"] and "gone" in again.steps[1].note
