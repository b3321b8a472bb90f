"""The prediction log through a real server: every answer kept before it is sent, read back,
exported and replayed; a kill -9 loses no prediction whose response was sent. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from medops.audit.query import AuditFilter, list_events
from medops.caller import Caller
from medops.config import PREDICTION_LOG_SYNC
from medops.errors import MedopsError, PermissionDenied
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.services import Services
from medops.serving import prediction_log, spool
from medops.serving.prediction_log import PredictionFilter
from medops.workspace import Workspace
from tests.factories import FAILING_SYNCER, PASSWORD, log_in, run, start_serve

AUDITOR = Caller("ming", channel="cli")  # an ML engineer: may read the log


def _promote(ws: Workspace, run_id: str) -> int:
    version = versions.register(ws, run_id, "readmission", actor="alice").version
    approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")
    stages.promote(ws, "readmission", version, "production", actor="ming", reason="go live")
    return version


def _token(services: Services) -> str:
    services.platform.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, secret = services.identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    return secret


def test_every_answer_is_logged_and_replays_identically(
    registry: tuple[Workspace, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, run_id = registry
    version = _promote(ws, run_id)
    services = Services(ws)
    headers = {"Authorization": f"Bearer {_token(services)}"}
    app = create_app(services, services.serving.load(["readmission"]))
    sent: dict[str, dict[str, object]] = {}
    with serving_in_thread(app) as url, httpx.Client(base_url=url, headers=headers) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        rows = [example, {**example, "age": 80}, {**example, "los": 1.0}]
        for body, query in ((example, ""), (rows, ""), (example, "?explain=true")):
            answer = http.post(f"/v1/models/readmission/predict{query}", json=body)
            assert answer.status_code == 200, answer.text
            inputs = body if isinstance(body, list) else [body]
            for row, given in zip(answer.json()["predictions"], inputs, strict=True):
                sent[row["prediction_id"]] = {"row": row, "inputs": given}
        # a body sent pretty-printed is kept as the rows it holds
        pretty = http.post("/v1/models/readmission/predict", content=json.dumps([example], indent=2).encode())
        assert pretty.status_code == 200, pretty.text
        sent[pretty.json()["predictions"][0]["prediction_id"]] = {
            "row": pretty.json()["predictions"][0],
            "inputs": example,
        }
    # the server stopped: its spool drained into the metadata store

    logged = {p.id: p for p in services.predictions.list(AUDITOR, PredictionFilter(model="readmission"), limit=100)}
    assert set(logged) == set(sent)
    for pid, what in sent.items():
        entry, row = logged[pid], what["row"]
        assert isinstance(row, dict)
        assert entry.inputs == what["inputs"]
        assert entry.output["probability"] == row["probability"] and entry.output["decision"] == row["decision"]
        assert (entry.model, entry.version, entry.bundle_sha256) == ("readmission", version, row["bundle_sha256"])
        assert entry.caller == "pat" and entry.variant == "champion" and entry.latency_ms > 0
        assert entry.explanation == row.get("explanation")
    assert sum(1 for p in logged.values() if p.explanation) == 1

    with pytest.raises(PermissionDenied):  # a predictor calls the API; it does not read what others were told
        services.predictions.list(Caller("pat", channel="token"), PredictionFilter())

    report = services.predictions.replay(AUDITOR, PredictionFilter())
    assert report.identical and report.replayed == len(sent) and report.versions == {f"readmission:{version}": 6}

    exported = services.predictions.export(AUDITOR, PredictionFilter(), tmp_path / "log.parquet")
    table = pq.read_table(exported.path)
    assert exported.rows == table.num_rows == len(sent) and set(table.column("id").to_pylist()) == set(sent)
    jsonl = services.predictions.export(AUDITOR, PredictionFilter(model="readmission"), tmp_path / "log.jsonl")
    lines = [json.loads(line) for line in jsonl.path.read_text().splitlines()]
    assert {line["id"] for line in lines} == set(sent)
    events = list_events(ws.db, AuditFilter(entity_type="prediction_log"), newest_first=False)
    assert [e.action for e in events] == [
        "predictions.replay",
        "predictions.export",
        "predictions.export",
    ]

    # a record whose output was changed after the fact (written behind the server's back) is caught
    first = next(iter(logged.values()))
    forged = {**first.to_json(), "id": "00000000-0000-4000-8000-000000000000"}
    forged["output"] = {**first.output, "probability": 0.999}
    prediction_log.store(ws)([forged])
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    log_in(ws, "ming")
    code, out, err = run(["predictions", "replay", "--json"], capsys)
    assert code == 1 and out, err
    differences = json.loads(out)["differences"]
    assert [(d["id"], d["what"], d["logged"]) for d in differences] == [(forged["id"], "probability", 0.999)]
    code, _, err = run(["predictions", "list", "--since", "yesterday"], capsys)
    assert code != 0 and "--since 'yesterday' is neither a time nor a duration" in err
    code, out, _ = run(["predictions", "list", "--since", "1h", "--json"], capsys)
    assert code == 0 and forged["id"] in {p["id"] for p in json.loads(out)}
    code, out, _ = run(["predictions", "show", forged["id"], "--json"], capsys)
    assert code == 0 and json.loads(out)["output"]["probability"] == 0.999


@pytest.mark.slow
@pytest.mark.parametrize("mode", PREDICTION_LOG_SYNC)
def test_kill_9_loses_no_prediction_whose_response_was_sent(
    registry: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    ws, run_id = registry
    _promote(ws, run_id)
    services = Services(ws)
    headers = {"Authorization": f"Bearer {_token(services)}"}
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    monkeypatch.setenv("MEDOPS_PREDICTION_LOG_SYNC", mode)  # the server's setting, from its environment
    server, url = start_serve(["readmission"])
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        described = httpx.get(f"{url}/v1/models/readmission", headers=headers)
        assert "server" not in described.headers  # what serves the API is not advertised
        example = described.json()["example"]
        assert httpx.get(f"{url}/readyz").json()["prediction_log"]["sync"] == mode

        def client() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
                while not stop.is_set():
                    try:
                        answer = http.post("/v1/models/readmission/predict", json=[example, example])
                    except httpx.TransportError:
                        return  # the server is gone: this request's answer never arrived
                    if answer.status_code == 200:
                        with lock:
                            acknowledged.extend(r["prediction_id"] for r in answer.json()["predictions"])

        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        while True:  # kill it mid-stream, once a few hundred answers are out
            with lock:
                if len(acknowledged) >= 400:
                    break
            assert server.poll() is None
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        stop.set()
        for thread in clients:
            thread.join(30)
    finally:
        if server.poll() is None:
            server.kill()
        _, said = server.communicate(timeout=30)
    assert f"(prediction_log_sync = {mode})".encode() in said  # the operator is told which promise the log keeps

    logged = {p.id for p in services.predictions.list(AUDITOR, PredictionFilter(), limit=100_000)}
    missing = set(acknowledged) - logged
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged predictions are not in the log"
    assert not any(ws.settings.prediction_spool_root.iterdir())  # the dead server's spool was drained and removed


@pytest.mark.parametrize(
    "sql", ["UPDATE predictions SET output = '{}'", "DELETE FROM predictions"], ids=["update", "delete"]
)
def test_a_logged_answer_cannot_be_rewritten_in_sql(workspace: Workspace, sql: str) -> None:
    """An insider with the application's database connection edits or removes what a patient was told: refused."""
    from sqlalchemy import text

    record = {
        "id": "00000000-0000-4000-8000-000000000001",
        "at": "2026-12-03T08:00:00.000000Z",
        "model": "readmission",
        "version": 1,
        "bundle_sha256": "0" * 64,
        "variant": "champion",
        "request_id": "0" * 32,
        "caller": "pat",
        "entity": None,
        "inputs": {"age": 70},
        "output": {"probability": 0.2, "decision": 0},
        "explanation": None,
        "latency_ms": 1.0,
    }
    prediction_log.store(workspace)([record])
    with pytest.raises(MedopsError, match="append-only"), workspace.db.write() as session:
        session.execute(text(sql))
    assert prediction_log.get(workspace, record["id"]).output == record["output"]


def test_a_log_whose_sync_failed_answers_no_more_and_is_not_ready(
    registry: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """background: the kernel may have dropped what it could not write, so the server stops answering."""
    ws, run_id = registry
    _promote(ws, run_id)
    services = Services(ws)
    headers = {"Authorization": f"Bearer {_token(services)}"}
    monkeypatch.setattr(spool, "SYNCER", FAILING_SYNCER)  # the disk fails under the written records
    app = create_app(services, services.serving.load(["readmission"]))
    with serving_in_thread(app) as url, httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        for _ in range(3000):  # a bound on the wait for the syncer's report, not a measurement
            ready = http.get("/readyz")
            if ready.status_code == 503:
                break
            time.sleep(0.01)
        assert ready.status_code == 503 and ready.json()["prediction_log"]["keeping"] is False
        refused = http.post("/v1/models/readmission/predict", json=example)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "prediction_log_unavailable"
