"""`medops serve` as an operator starts it: a separate process with several workers, answering a
token that `medops token create --json` printed, refusing to start on a model it can't serve, and
each worker following an alias that moves, the swap written to the server's log."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.workspace import Workspace
from tests.factories import PASSWORD, free_port, log_in, run, start_serve


def test_serve_with_two_workers_answers_a_token_printed_as_json(
    registry: tuple[Workspace, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, run_id = registry
    version = versions.register(ws, run_id, "readmission", actor="alice").version
    approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")
    stages.set_alias(ws, "readmission", "champion", version, actor="ming", reason="serve it")
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    log_in(ws, "admin")
    code, out, _ = run(["token", "create", "--name", "ehr", "--user", "pat", "--json"], capsys)
    assert code == 0
    secret = json.loads(out)["secret"]

    code, _, err = run(["serve", "readmission", "--port", str(free_port())], capsys)
    assert code == 1 and "no production version" in err  # refused before any port opens

    server, url = start_serve(["readmission@champion", "--workers", "2", "--follow-interval", "0.1", "--json"])
    try:
        # a new connection per request, as separate callers make: each may land on either worker
        with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            headers = {"Authorization": f"Bearer {secret}"}
            example = http.get("/v1/models/readmission", headers=headers).json()["example"]
            for _ in range(4):  # a few requests
                answer = http.post("/v1/models/readmission/predict", json=example, headers=headers)
                assert answer.status_code == 200, answer.text
                assert answer.json()["predictions"][0]["version"] == version
                assert "server" not in answer.headers  # what serves the API is not advertised
                assert answer.headers["x-request-id"] and answer.headers["date"]
            assert http.post("/v1/models/readmission/predict", json=example).status_code == 401

            moved = versions.register(ws, run_id, "readmission", actor="alice").version
            stages.set_alias(ws, "readmission", "champion", moved, actor="ming", reason="the next one")
            answered: list[int] = []
            for _ in range(1200):  # bounded wait until both workers followed: eight answers in a row from the new one
                answer = http.post("/v1/models/readmission/predict", json=example, headers=headers)
                assert answer.status_code == 200, answer.text
                answered.append(answer.json()["predictions"][0]["version"])
                if answered[-8:] == [moved] * 8:
                    break
                time.sleep(0.05)
            assert answered[-8:] == [moved] * 8
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    bundle = versions.get(ws, "readmission", moved).artifact_sha256
    swapped = f"readmission: serving version {moved} (bundle {bundle}) in place of version {version}"
    assert swapped in log.decode()
