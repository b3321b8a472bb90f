"""Experiment tracking on both metadata backends: logging, failure, abandonment, search, comparison."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import medops
from medops.audit import AuditFilter, list_events
from medops.clock import utc_now
from medops.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from medops.identity import Role
from medops.store.lineage import walk
from medops.training import MetricFilter, Tracker
from medops.training.environment import environment_lock
from medops.training.tracking import run_node
from medops.workspace import Workspace
from tests.factories import log_in


@pytest.fixture
def tracker(team: Workspace) -> Tracker:
    return Tracker(team, heartbeat_seconds=0.2)


def test_a_run_records_everything_and_finishes(tracker: Tracker) -> None:
    with tracker.start_run("readmission", "baseline", params={"lr": 0.1, "depth": 4}, seed=7, actor="alice") as run:
        run.set_tag("model", "lgbm")
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"auroc": 0.81, "auprc": 0.4})
        run.log_input("training_set", "readmission_training", "ab" * 32)
        digest = run.log_artifact("model.txt", b"tree 1\n")
    info = tracker.get(run.id[:8])
    assert info.state == "finished" and info.ended_at is not None and info.error is None
    assert info.params == {"lr": "0.1", "depth": "4", "seed": "7"}
    assert info.tags == {"model": "lgbm"} and info.created_by == "alice"
    assert info.metrics["loss"] == pytest.approx(1 / 50) and info.metrics["auroc"] == 0.81
    history = tracker.metric_history(run.id, "loss")
    assert [s for s, _ in history] == list(range(50)) and history[0] == (0, 1.0)
    assert info.inputs == [{"kind": "training_set", "name": "readmission_training", "version": "ab" * 32}]
    assert info.artifacts == [{"path": "model.txt", "digest": digest, "size": 7}]
    lock = tracker.ws.artifacts.read_bytes(str(info.env_digest)).decode()
    assert "\nmedops==" in "\n" + lock and lock == environment_lock()  # the same environment, the same bytes
    assert info.host and info.seed == 7
    edges = walk(tracker.ws.db, run_node(run.id), "up", depth=1)
    assert [e.relation for e in edges] == ["trained_on"]
    actions = [e.action for e in list_events(tracker.ws.db, AuditFilter(entity_type="run"), limit=None)]
    assert actions[-2:] == ["run.finished", "run.start"] or sorted(actions) == ["run.finished", "run.start"]


def test_an_exception_marks_the_run_failed_with_the_error(tracker: Tracker) -> None:
    with pytest.raises(ZeroDivisionError):
        with tracker.start_run("readmission", actor="alice") as run:
            run.log_metric("loss", 0.5)
            _ = 1 / 0
    info = tracker.get(run.id)
    assert info.state == "failed" and info.error == "ZeroDivisionError: division by zero"
    assert info.metrics == {"loss": 0.5}  # what was logged before the failure is kept


def test_an_interrupt_marks_the_run_killed(tracker: Tracker) -> None:
    with pytest.raises(KeyboardInterrupt):
        with tracker.start_run("readmission", actor="alice") as run:
            raise KeyboardInterrupt
    assert tracker.get(run.id).state == "killed"


def test_bad_logging_is_refused_clearly(tracker: Tracker) -> None:
    with tracker.start_run("readmission", params={"lr": 0.1}, actor="alice") as run:
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(InvalidInput, match="parameter 'lr' is '0.1' already, not '0.2'"):
            run.log_param("lr", 0.2)
        with pytest.raises(InvalidInput, match="not a finite number"):
            run.log_metric("loss", float("nan"))
        with pytest.raises(InvalidInput, match="metric name"):
            run.log_metric("a;b", 1.0)
        with pytest.raises(InvalidInput, match="input kind"):
            run.log_input("model", "x", "1")
    with pytest.raises(NotFound):
        tracker.get("abcdef123456")
    with pytest.raises(InvalidInput, match="not a run id"):
        tracker.get("xyz")


def test_only_people_who_train_start_runs(tracker: Tracker) -> None:
    with pytest.raises(PermissionDenied):
        tracker.start_run("readmission", actor="carol")


def test_search_by_experiment_state_tag_and_metric(tracker: Tracker) -> None:
    ids = {}
    for i, (model, auc) in enumerate([("lgbm", 0.82), ("lgbm", 0.74), ("logreg", 0.79)]):
        with tracker.start_run("readmission" if i < 2 else "other", tags={"model": model}, actor="alice") as run:
            run.log_metric("auroc", auc)
        ids[(model, auc)] = run.id
    found = tracker.list_runs(tags={"model": "lgbm"}, metrics=[MetricFilter.parse("auroc>=0.8")])
    assert [r.id for r in found] == [ids[("lgbm", 0.82)]]
    assert {r.id for r in tracker.list_runs(experiment="readmission")} == {ids[("lgbm", 0.82)], ids[("lgbm", 0.74)]}
    assert len(tracker.list_runs(metrics=[MetricFilter.parse("auroc<0.8")])) == 2
    assert tracker.list_runs(state="failed") == []
    with pytest.raises(InvalidInput, match="METRIC<op>NUMBER"):
        MetricFilter.parse("auroc")
    with pytest.raises(InvalidInput, match="state 'done'"):
        tracker.list_runs(state="done")


def test_nested_runs_for_trials(tracker: Tracker) -> None:
    with tracker.start_run("tuning", actor="alice") as parent:
        for trial in range(3):
            with parent.child(f"trial-{trial}", params={"lr": 0.1 * (trial + 1)}) as child:
                child.log_metric("auroc", 0.7 + trial / 100)
    trials = tracker.list_runs(parent=parent.id)
    assert len(trials) == 3 and all(t.experiment == "tuning" for t in trials)
    assert [r.id for r in tracker.list_runs(experiment="tuning", top_level=True)] == [parent.id]
    assert {e.dst for e in walk(tracker.ws.db, run_node(parent.id), "down", depth=1)} == {
        run_node(t.id) for t in trials
    }


def test_compare_names_what_differs(tracker: Tracker) -> None:
    with tracker.start_run("readmission", params={"lr": 0.1, "depth": 4}, seed=1, actor="alice") as a:
        a.log_metric("auroc", 0.8)
        a.log_input("dataset", "encounters", "1" * 64)
    with tracker.start_run("readmission", params={"lr": 0.2, "depth": 4}, seed=2, actor="alice") as b:
        b.log_metric("auroc", 0.82)
        b.log_input("dataset", "encounters", "2" * 64)
    diff = tracker.compare(a.id, b.id)
    assert diff.params == [("lr", "0.1", "0.2"), ("seed", "1", "2")]
    assert diff.metrics == [("auroc", 0.8, 0.82)]
    assert diff.inputs == [("dataset:encounters", "1" * 64, "2" * 64)]
    assert ("seed", 1, 2) in diff.code and diff.environment == []


def test_a_killed_process_is_marked_abandoned(team: Workspace, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, signal, sys
        from medops.training import Tracker
        from medops.workspace import Workspace
        ws = Workspace.open()
        run = Tracker(ws, heartbeat_seconds=0.2).start_run("readmission", "doomed", actor="alice")
        print(run.id, flush=True)
        run.log_metric("loss", 1.0)
        run.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "MEDOPS_HOME": str(team.settings.home)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id = done.stdout.strip()
    now = [utc_now()]
    tracker = Tracker(team, abandon_after=timedelta(minutes=5), clock=lambda: now[0])
    assert tracker.get(run_id).state == "running"  # nobody has looked yet
    assert {r.id: r for r in tracker.list_runs()}[run_id].state == "running"  # its last heartbeat is recent
    now[0] += timedelta(minutes=6)
    listed = {r.id: r for r in tracker.list_runs()}
    assert listed[run_id].state == "killed"
    info = tracker.get(run_id)
    assert info.error is not None and info.error.startswith("abandoned: no heartbeat since")
    assert info.metrics == {"loss": 1.0}
    events = list_events(team.db, AuditFilter(action="run.abandoned"), limit=None)
    assert [e.entity_id for e in events] == [run_id]


def test_the_top_level_api_opens_the_workspace(team: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    log_in(team, "alice")
    with medops.start_run("readmission", params={"lr": 0.3}) as run:
        run.log_metric("auroc", 0.7)
    assert Tracker(team).get(run.id).params == {"lr": "0.3"} and Tracker(team).get(run.id).created_by == "alice"


def test_the_top_level_api_acts_only_as_a_verified_credential(team: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    monkeypatch.setenv("MEDOPS_USER", "alice")  # a name alone: not a credential
    with pytest.raises(AuthenticationFailed) as refused:
        medops.start_run("readmission")
    assert refused.value.code == "login_required"
    with pytest.raises(InvalidInput, match="takes no actor"):
        medops.start_run("readmission", actor="admin")
    _, token = team.tokens.create("alice", "notebook")
    monkeypatch.setenv("MEDOPS_TOKEN", token)  # automation: an API token
    with medops.start_run("readmission") as run:
        run.log_metric("auroc", 0.7)
    assert Tracker(team).get(run.id).created_by == "alice"
    assert list_events(team.db, AuditFilter(action="run.start"))[0].actor == "alice"


def test_the_top_level_api_reuses_the_workspace_and_checks_the_credential_every_run(
    team: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    made, token = team.tokens.create("alice", "notebook")
    monkeypatch.setenv("MEDOPS_TOKEN", token)
    with medops.start_run("readmission") as first:
        first.log_param("n", 1)
    with medops.start_run("readmission") as second:
        second.log_param("n", 2)
    assert first.tracker is second.tracker  # one workspace, one schema check, one environment lock per process
    assert Tracker(team).get(second.id).params == {"n": "2"}
    _, credentials = medops._process_tracker()
    assert credentials.full_checks == 1  # the second run read the newest user or token event, not the rows
    team.tokens.revoke("admin", made.id, reason="the notebook leaked")
    with pytest.raises(AuthenticationFailed):  # the reused workspace still asks who acts, every run
        medops.start_run("readmission")


@pytest.mark.parametrize("change", ["disable", "role", "password"])
def test_a_remembered_credential_is_checked_again_after_any_change_to_users(
    team: Workspace, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    _, token = team.tokens.create("alice", "notebook")
    monkeypatch.setenv("MEDOPS_TOKEN", token)
    with medops.start_run("readmission"):
        pass
    if change == "disable":
        team.users.disable("admin", "alice", reason="left the team")
        refused: type[Exception] = AuthenticationFailed
    elif change == "role":
        team.users.revoke("admin", "alice", Role.DATA_SCIENTIST, reason="moved to reporting")
        refused = PermissionDenied
    else:
        team.users.reset_password("admin", "alice", "a-temporary-password-1", reason="forgotten")
        refused = AuthenticationFailed  # she must choose her own before acting again
    with pytest.raises(refused):
        medops.start_run("readmission")


def test_a_failed_write_loses_nothing_and_a_failed_last_write_fails_the_run(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.training import tracking

    real = tracking._write_batch
    calls = {"n": 0}

    def flaky(*args: object) -> dict[str, tuple[int, float]]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tracking, "_write_batch", flaky)
    run = tracker.start_run("readmission", params={"lr": 0.1}, actor="alice")
    run.log_metric("loss", 1.0)
    with pytest.raises(RuntimeError):
        run.flush()
    run.log_metric("loss", 0.5)
    run.end()
    info = tracker.get(run.id)
    assert info.state == "finished" and info.params == {"lr": "0.1"}
    assert tracker.metric_history(run.id, "loss") == [(0, 1.0), (1, 0.5)]

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    second = tracker.start_run("readmission", actor="alice")
    monkeypatch.setattr(tracking, "_write_batch", broken)
    second.log_metric("loss", 1.0)
    with pytest.raises(RuntimeError):
        second.end()
    failed = tracker.get(second.id)
    assert failed.state == "failed" and "its last values could not be stored" in str(failed.error)
