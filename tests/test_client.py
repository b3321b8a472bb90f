"""`medops.start_run` and `medops.Client` against a running `medops server`, on SQLite and PostgreSQL:
the run is logged over HTTP (batched), lands in the workspace as a local run does, and keeps the
local run's rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import medops
from medops.client import RemoteRun
from medops.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from medops.services import Services
from medops.training import Tracker
from medops.workspace import Workspace
from tests.factories import PASSWORD, run, start_serve

pytestmark = pytest.mark.slow


def token(ws: Workspace, user: str) -> str:
    identity = Services(ws).identity
    return identity.create_token(identity.authenticate(identity.login(user, password=PASSWORD)[1]), "sdk")[1]


@pytest.fixture
def server(registry: tuple[Workspace, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ws, _ = registry
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    process, url = start_serve([], command_name="server", log=tmp_path / "server.log")
    monkeypatch.delenv("MEDOPS_HOME")  # the client has no workspace: only the server's URL and a token
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDOPS_SERVER_URL", url)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)


def test_a_run_logged_through_the_server_lands_in_the_workspace(
    registry: tuple[Workspace, str], server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = registry
    monkeypatch.setenv("MEDOPS_TOKEN", token(ws, "alice"))
    with medops.start_run("remote", params={"C": 0.5}, tags={"team": "icu"}, seed=3) as run:
        for step in range(RemoteRun.flush_every + 500):  # more than one batch
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metric("auroc", 0.81)
        with pytest.raises(InvalidInput, match="already"):
            run.log_param("C", 0.7)
    stored = Tracker(ws).get(run.id)
    assert stored.state == "finished" and stored.created_by == "alice"
    assert stored.params == {"C": "0.5", "seed": "3"} and stored.tags["team"] == "icu"
    assert stored.metrics["auroc"] == 0.81
    values = RemoteRun.flush_every + 500
    assert len(Tracker(ws).metric_history(run.id, "loss")) == values
    client = medops.Client(server, token(ws, "victor"))
    assert client.runs(experiment="remote")[0]["id"] == run.id
    assert client.get(f"/v1/runs/{run.id}/metrics/loss")["steps"][-1] == {"step": values - 1, "value": 1 / values}


def test_a_failed_run_and_the_roles_hold_over_the_server(
    registry: tuple[Workspace, str], server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = registry
    monkeypatch.setenv("MEDOPS_TOKEN", token(ws, "alice"))
    with pytest.raises(RuntimeError), medops.start_run("remote") as run:
        run.log_metric("loss", 0.3)
        raise RuntimeError("the data ran out")
    stored = Tracker(ws).get(run.id)
    assert stored.state == "failed" and "the data ran out" in (stored.error or "")
    assert stored.metrics["loss"] == 0.3
    monkeypatch.setenv("MEDOPS_TOKEN", token(ws, "carol"))  # a clinical reviewer trains nothing
    with pytest.raises(PermissionDenied):
        medops.start_run("remote")
    with medops.Client(server, token(ws, "alice")).start_run("x") as mine:
        victor = medops.Client(server, token(ws, "victor"))
        with pytest.raises(PermissionDenied):
            victor.post(f"/v1/runs/{mine.id}/log", {"metrics": [{"key": "auroc", "value": 0.99}]})
    assert "auroc" not in Tracker(ws).get(mine.id).metrics


def test_medops_login_server_keeps_a_session_the_sdk_uses(
    registry: tuple[Workspace, str],
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    ws, _ = registry
    monkeypatch.setenv("MEDOPS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.delenv("MEDOPS_TOKEN", raising=False)
    code, _, err = run(
        ["login", "alice", "--password-stdin"], capsys, stdin="wrong-password\n", monkeypatch=monkeypatch
    )
    assert code != 0 and "wrong-password" not in err
    code, out, err = run(
        ["login", "alice", "--server", server, "--password-stdin", "--json"], capsys, PASSWORD + "\n", monkeypatch
    )
    assert code == 0, err
    kept = Path(json.loads(out)["session_file"])
    assert kept.stat().st_mode & 0o077 == 0
    with medops.start_run("via-login") as run_made:  # MEDOPS_SERVER_URL and the kept session: no token
        run_made.log_metric("auroc", 0.7)
    assert Tracker(ws).get(run_made.id).created_by == "alice"
    code, _, _ = run(["logout", "--server", server], capsys)
    assert code == 0 and not kept.exists()
    with pytest.raises(AuthenticationFailed):
        medops.start_run("after-logout")


def test_the_client_drops_an_idle_connection_before_the_server_closes_it() -> None:
    # at equal times (httpx and uvicorn both keep 5 s), a request sent on a connection the server is closing
    # fails with a read error: seen once under a minute of load
    import uvicorn

    from medops.training.tracking import FLUSH_SECONDS

    client = medops.Client("http://127.0.0.1:9", "not-a-token")
    try:
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert FLUSH_SECONDS < pool._keepalive_expiry < uvicorn.Config(app=None).timeout_keep_alive
    finally:
        client.close()


def _access(log: Path, route: str, at_least: int = 0) -> int:
    """How many requests the server's access log shows on ``route`` (a POST); it writes a request's line
    just after answering, so this waits (a few seconds at most) for ``at_least`` of them."""
    import time

    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        found = sum(1 for line in lines if line.get("method") == "POST" and line.get("route") == route)
        if found >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _events(ws: Workspace, run_id: str) -> list[tuple[int, str, str]]:
    from sqlalchemy import select

    from medops.store.schema import AuditEvent

    with ws.db.read() as session:
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.action, AuditEvent.ts)
            .where(AuditEvent.entity_type == "run", AuditEvent.entity_id == run_id)
            .order_by(AuditEvent.seq)
        ).all()
    return [(int(seq), action, ts) for seq, action, ts in rows]


def test_a_client_s_later_short_run_is_recorded_whole_in_one_request(
    registry: tuple[Workspace, str], server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws, _ = registry
    monkeypatch.setenv("MEDOPS_TOKEN", token(ws, "alice"))
    with medops.start_run("trials") as first:  # the first opens at once: a wrong token or role stops it here
        assert Tracker(ws).get(first.id).state == "running"
    with medops.start_run("trials", params={"C": 0.5}, seed=7) as trial:
        trial.log_metric("auroc", 0.81)
        trial.set_tag("fold", 2)
        with pytest.raises(InvalidInput, match="already"):  # the local rules hold before the server has the run
            trial.log_param("C", 0.7)
        with pytest.raises(NotFound):  # not on the server yet
            Tracker(ws).get(trial.id)
    stored = Tracker(ws).get(trial.id)
    assert stored.state == "finished" and stored.created_by == "alice" and stored.name.startswith("trials-")
    assert stored.params == {"C": "0.5", "seed": "7"} and stored.tags == {"fold": "2"}
    assert stored.metrics == {"auroc": 0.81} and stored.ended_at is not None
    assert stored.started_at <= stored.ended_at and stored.git_commit is None  # tmp_path is no git repository
    starts = _access(tmp_path / "server.log", "/v1/runs", at_least=2)
    assert starts == 2 and _access(tmp_path / "server.log", "/v1/runs/{run}/end") == 1  # the first run's end only
    events = _events(ws, trial.id)  # one transaction: both events, in order, at one time
    assert [a for _, a, _ in events] == ["run.start", "run.finished"]
    assert events[1][0] == events[0][0] + 1 and events[0][2] == events[1][2]
    assert ws.verify_audit().problems == []


def test_a_waiting_run_is_opened_after_a_moment_and_its_child_after_it(
    registry: tuple[Workspace, str], server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from medops import client

    ws, _ = registry
    monkeypatch.setattr(client, "DEFER_SECONDS", 0.2)
    alice = medops.Client(server, token(ws, "alice"))
    with alice.start_run("tuning"):
        pass
    with alice.start_run("tuning") as parent:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its heartbeat thread opens it, with nothing logged
            try:
                if Tracker(ws).get(parent.id).state == "running":
                    break
            except NotFound:
                time.sleep(0.05)
        assert Tracker(ws).get(parent.id).state == "running"
        with parent.child("trial-1") as trial:
            trial.log_metric("loss", 0.4)
    assert Tracker(ws).get(trial.id).parent_id == parent.id
    assert Tracker(ws).get(parent.id).state == "finished"
    assert [a for _, a, _ in _events(ws, parent.id)] == ["run.start", "run.finished"]


def test_a_permission_lost_between_runs_is_refused_when_the_run_reaches_the_server(
    registry: tuple[Workspace, str], server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.identity import Role

    ws, _ = registry
    alice = medops.Client(server, token(ws, "alice"))
    with alice.start_run("trials"):
        pass
    identity = Services(ws).identity
    admin = identity.authenticate(identity.login("admin", password=PASSWORD)[1])
    identity.revoke_role(admin, "alice", Role.DATA_SCIENTIST, reason="moved to another team")
    trial = alice.start_run("trials")  # waits for its first write: the server is asked then
    trial.log_metric("auroc", 0.9)
    with pytest.raises(PermissionDenied):
        trial.end()
    with pytest.raises(NotFound):
        Tracker(ws).get(trial.id)
    denied = [a for _, a, _ in _events(ws, trial.id)]
    assert denied and set(denied) == {"run.start.denied"}  # each refusal audited, nothing recorded


def test_the_server_checks_a_run_named_or_recorded_by_its_client(registry: tuple[Workspace, str], server: str) -> None:
    import uuid

    import sqlalchemy as sa

    from medops.clock import utc_now
    from medops.errors import Conflict
    from medops.store.schema import Run as RunRow

    ws, _ = registry
    alice = medops.Client(server, token(ws, "alice"))
    made = alice.post("/v1/runs", {"experiment": "x", "id": uuid.uuid4().hex, "elapsed": 1.5})
    assert made["state"] == "running"
    with pytest.raises(Conflict, match="exists already"):
        alice.post("/v1/runs", {"experiment": "x", "id": made["id"]})
    planted = uuid.uuid4().hex  # a row written by SQL, outside medops, under another user's name
    with ws.db.write() as session:
        session.execute(
            sa.insert(RunRow).values(
                id=planted,
                experiment="x",
                name="planted",
                state="running",
                created_by="victor",
                host="h",
                started_at=utc_now(),
                heartbeat_at=utc_now(),
            )
        )
    with pytest.raises(Conflict, match="exists already"):  # not taken over, nor recorded as alice's
        alice.post("/v1/runs", {"experiment": "x", "id": planted, "end": {"state": "finished"}})
    assert _events(ws, planted) == [] and Tracker(ws).get(planted).created_by == "victor"
    end = {"state": "finished", "params": {"a": "1"}}
    for bad in (
        {"experiment": "x", "id": "not-hex"},
        {"experiment": "x", "elapsed": -1},
        {"experiment": "x", "elapsed": 1e12},
        {"experiment": "x", "end": end},  # a run recorded whole is named by its client
        {"experiment": "x", "id": uuid.uuid4().hex, "end": {**end, "state": "running"}},
        {"experiment": "bad name!", "id": uuid.uuid4().hex, "end": end},
        {"experiment": "x", "id": uuid.uuid4().hex, "end": {**end, "params": {"bad key!": "1"}}},
    ):
        with pytest.raises(InvalidInput):
            alice.post("/v1/runs", bad)
    metrics = [{"key": "loss", "value": v, "step": step} for step, v in ((1, 0.5), (0, 0.9), (1, 0.4))]
    end |= {"tags": {"fold": "1"}, "metrics": metrics}
    whole = alice.post("/v1/runs", {"experiment": "x", "id": uuid.uuid4().hex, "elapsed": 2.0, "end": end})
    assert whole["state"] == "finished" and whole["duration_s"] >= 2.0
    assert whole["metrics"] == {"loss": 0.4} and whole["tags"] == {"fold": "1"}  # the last value of the top step
    listed = next(r for r in alice.runs(experiment="x") if r["id"] == whole["id"])
    assert listed == whole  # the answer is the summary as stored
    assert Tracker(ws).get(whole["id"]).params == {"a": "1"}
