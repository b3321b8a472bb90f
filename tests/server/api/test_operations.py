"""Every operation of the platform API, walked three ways on a copy of the demo's workspace: without a
credential (401), as a user whose roles don't allow it (403, and the refusal is in the audit trail),
and as a user whose roles do (2xx). A route added without a line here fails the coverage test."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medops.demo import DEMO_PASSWORD
from medops.server.api.app import ApiOptions, create_api
from medops.workspace import Workspace

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/auth/login"), ("POST", "/v1/auth/password")}
READ = "pat"  # holds the predictor role only: it reads nothing


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # the template, as the OpenAPI document names it
    right: str  # a demo user whose roles allow it
    wrong: str | None  # one whose roles don't (None: every signed-in user may)
    body: dict[str, Any] | None = None
    query: str = ""
    status: int = 200


def operations(ids: dict[str, str]) -> list[Op]:
    """In an order the right users can follow on one workspace (later changes build on earlier ones)."""
    pw = DEMO_PASSWORD
    reason = {"reason": "API walk"}
    return [
        Op("GET", "/metrics", "alice", None),
        Op("GET", "/v1/auth/whoami", "alice", None),
        Op("GET", "/v1/workspace", "ada", "alice"),
        Op("GET", "/v1/users", "ada", READ),  # every role but a prediction token's sees who else works here
        Op(
            "POST",
            "/v1/users",
            "ada",
            "alice",
            {
                "username": "nina",
                "full_name": "Nina Park",
                "password": "a-first-password-77",
                "roles": ["data_scientist"],
            },
            status=201,
        ),
        Op("POST", "/v1/users/{username}/roles/{role}", "ada", "alice", reason),
        Op("DELETE", "/v1/users/{username}/roles/{role}", "ada", "alice", query="reason=walk"),
        # nina has no identity-provider account pinned: the right user reaches that rule (409), not a refusal
        Op("DELETE", "/v1/users/{username}/provider-links", "ada", "alice", query="reason=walk", status=409),
        Op("POST", "/v1/users/{username}/disable", "ada", "alice", reason),
        Op("POST", "/v1/users/{username}/enable", "ada", "alice", reason),
        Op(
            "POST",
            "/v1/users/{username}/password-reset",
            "ada",
            "alice",
            {"temporary_password": "temp-pass-9876-x", **reason},
        ),
        Op("GET", "/v1/tokens", "alice", None),
        Op("POST", "/v1/tokens", "ada", "alice", {"name": "ci", "username": "ming"}, status=201),
        Op("DELETE", "/v1/tokens/{token_id}", "ada", "alice", query="reason=walk"),
        Op("GET", "/v1/project", "alice", READ),
        Op("GET", "/v1/datasets", "alice", READ),
        Op("GET", "/v1/datasets/{ref}", "alice", READ),
        Op("GET", "/v1/datasets/{ref}/diff/{other}", "alice", READ),
        Op("POST", "/v1/datasets/{ref}/use", "alice", "carol", reason),
        Op("GET", "/v1/lineage/{entity}", "alice", READ),
        Op("GET", "/v1/features/{view}", "alice", READ),
        Op("GET", "/v1/runs", "alice", READ),
        Op("GET", "/v1/runs/{run}", "alice", READ),
        Op("GET", "/v1/runs/{run}/metrics/{key}", "alice", READ),
        Op("GET", "/v1/runs/{run}/compare/{other}", "alice", READ),
        Op("GET", "/v1/runs/{run}/artifacts/{path}", "alice", READ),
        Op("POST", "/v1/runs", "alice", "carol", {"experiment": "walk", "seed": 1}, status=201),
        Op(
            "POST",
            "/v1/runs/{run}/log",
            "alice",
            "ming",
            {"params": {"C": "1"}, "metrics": [{"key": "auroc", "value": 0.8}]},
        ),
        Op("POST", "/v1/runs/{run}/heartbeat", "alice", "ming"),
        Op("POST", "/v1/runs/{run}/end", "alice", "ming", {"state": "finished"}),
        Op("GET", "/v1/evaluations", "alice", READ),
        Op("GET", "/v1/evaluations/{ref}", "alice", READ),
        Op("GET", "/v1/evaluations/{ref}/report", "alice", READ),
        Op("GET", "/v1/evaluations/{ref}/card", "alice", READ),
        Op("GET", "/v1/models", "alice", READ),
        Op("GET", "/v1/models/{ref}", "alice", READ),
        Op("GET", "/v1/models/{name}/history", "alice", READ),
        Op("GET", "/v1/models/{ref}/approvals", "alice", READ),
        Op("GET", "/v1/models/{ref}/bundle", "ming", "carol"),
        Op("POST", "/v1/models", "alice", "carol", {"run": ids["run"], "name": "walked", **reason}, status=201),
        Op("POST", "/v1/models/{ref}/approval-requests", "alice", "carol", reason, status=201),
        Op(
            "POST",
            "/v1/models/{ref}/signatures",
            "carol",
            "alice",
            {"password": pw, "role": "clinical_reviewer"},
            status=201,
        ),
        Op("POST", "/v1/models/{ref}/stage", "ming", "alice", {"stage": "staging", **reason}),
        Op("PUT", "/v1/models/{ref}/aliases/{alias}", "ming", "carol", reason),
        Op("DELETE", "/v1/models/{name}/aliases/{alias}", "ming", "carol", query="reason=walk"),
        Op("POST", "/v1/models/{name}/rollback", "ming", "alice", reason),
        # only an imported version's evaluation is accepted: the right user reaches that rule, not a refusal
        Op("POST", "/v1/models/{ref}/evaluation-acceptance", "victor", "alice", {"password": pw, **reason}, status=422),
        Op("GET", "/v1/predictions", "victor", "alice"),
        Op("GET", "/v1/predictions/{prediction_id}", "victor", "alice"),
        Op("GET", "/v1/monitoring/windows", "alice", READ),
        Op("GET", "/v1/monitoring/windows/{window_id}", "alice", READ),
        Op("GET", "/v1/alerts", "alice", READ),
        Op("GET", "/v1/alerts/{alert_id}", "alice", READ),
        # the demo's one alert is acknowledged already: the right user reaches that rule (409), not a refusal
        Op("POST", "/v1/alerts/{alert_id}/acknowledge", "ming", READ, reason, status=409),
        Op("POST", "/v1/alerts/{alert_id}/resolve", "ming", READ, reason),
        Op("GET", "/v1/pipelines/runs", "alice", READ),
        Op("GET", "/v1/pipelines/runs/{ref}", "alice", READ),
        Op("GET", "/v1/audit/events", "victor", READ),  # every role but a prediction token's reads the trail
        Op("GET", "/v1/audit/verify", "victor", READ),
        Op("GET", "/v1/audit/export", "victor", READ),
        Op("GET", "/v1/evidence/predictions/{prediction_id}", "victor", "alice"),  # auditors and admins only
        Op("GET", "/v1/evidence/models/{ref}", "ada", "carol", query="format=html"),
        Op("POST", "/v1/auth/logout", "alice", None),
    ]


@pytest.fixture
def api(demo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MEDOPS_KEY_DIR", str(demo_copy / "keys"))
    with TestClient(create_api(Workspace.open(demo_copy / "workspace"), ApiOptions(secure_cookies=False))) as client:
        yield client


def bearer(api: TestClient, user: str) -> dict[str, str]:
    answer = api.post("/v1/auth/login", json={"username": user, "password": DEMO_PASSWORD, "cookie": False})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['secret']}"}


def identifiers(api: TestClient) -> dict[str, str]:
    """Real ids from the demo, read through the API itself."""
    admin = bearer(api, "ada")
    auditor = bearer(api, "victor")

    def first(path: str, headers: dict[str, str] = admin, key: str = "id", n: int = 0) -> str:
        answer = api.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
        return str(answer.json()["items"][n][key])

    made = api.post("/v1/tokens", headers=admin, json={"name": "ci", "username": "ming"})
    assert made.status_code == 201, made.text
    registered = api.post(
        "/v1/models", headers=bearer(api, "alice"), json={"run": runs_of(api, admin)[0], "name": "walked"}
    )
    assert registered.status_code == 201, registered.text
    opened = api.post("/v1/runs", headers=bearer(api, "alice"), json={"experiment": "walk"})
    assert opened.status_code == 201, opened.text
    training = api.get("/v1/datasets?name=readmission_training", headers=admin).json()["items"]
    datasets = api.get("/v1/datasets?name=observations", headers=admin).json()["items"]
    runs = api.get("/v1/runs?limit=2&state=finished", headers=admin).json()["items"]
    return {
        "username": "nina",
        "role": "auditor",
        "ref_dataset": f"observations@{datasets[1]['version']}",
        "other_dataset": f"observations@{datasets[0]['version']}",
        "training_set": f"readmission_training@{training[0]['version']}",
        "open_run": opened.json()["id"],
        "run": runs[0]["id"],
        "other_run": runs[1]["id"],
        "evaluation": first("/v1/evaluations"),
        "prediction_id": first("/v1/predictions", auditor),
        "window_id": first("/v1/monitoring/windows"),
        "alert_id": first("/v1/alerts"),
        "pipeline": first("/v1/pipelines/runs"),
    }


def runs_of(api: TestClient, headers: dict[str, str]) -> list[str]:
    return [r["id"] for r in api.get("/v1/runs?limit=2", headers=headers).json()["items"]]


def concrete(op: Op, ids: dict[str, str], api: TestClient, headers: dict[str, str]) -> str:
    values = {
        "username": ids["username"],
        "role": ids["role"],
        "entity": "readmission_30d:1",
        "view": "labs",
        "run": ids["run"],
        "other": ids["other_run"],
        "key": "test_auroc",
        "path": "model.skops",
        "name": "readmission_30d",
        "alias": "challenger",
        "prediction_id": ids["prediction_id"],
        "window_id": ids["window_id"],
        "alert_id": ids["alert_id"],
    }
    if op.path.startswith("/v1/datasets/"):
        values |= {"ref": ids["ref_dataset"], "other": ids["other_dataset"]}
    elif op.path.startswith("/v1/runs/{run}/") and op.method == "POST":
        values["run"] = ids["open_run"]
    elif op.path.startswith("/v1/evaluations/"):
        values["ref"] = ids["evaluation"]
    elif op.path.startswith("/v1/pipelines/"):
        values["ref"] = ids["pipeline"]
    elif op.path.startswith("/v1/models/{ref}"):
        values["ref"] = "walked:1" if op.method != "GET" else "readmission_30d:1"
        if op.path.endswith("/bundle"):
            values["ref"] = "readmission_30d:3"
    elif op.path.startswith("/v1/evidence/models/"):
        values["ref"] = "readmission_30d:3"
    elif op.path == "/v1/tokens/{token_id}":
        listed = api.get("/v1/tokens?username=ming", headers=headers).json()
        values["token_id"] = next(t["id"] for t in listed if t["name"] == "ci" and t["state"] == "active")
    path = op.path.format(**values)
    return f"{path}?{op.query}" if op.query else path


def call(api: TestClient, op: Op, path: str, headers: dict[str, str]) -> Any:
    return api.request(op.method, path, headers=headers, json=op.body)


def test_every_operation_in_the_schema_is_walked(api: TestClient) -> None:
    doc = api.get("/openapi.json", headers=bearer(api, "alice")).json()
    served = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    walked = {(op.method, op.path) for op in operations({"run": "-"})}
    assert served - OPEN == walked


def test_every_operation_refuses_a_caller_without_a_credential(api: TestClient) -> None:
    ids = identifiers(api)
    admin = bearer(api, "ada")
    for op in operations(ids):
        path = concrete(op, ids, api, admin)
        for headers in ({}, {"Authorization": "Bearer medops_nothing_here"}):
            answer = call(api, op, path, headers)
            assert answer.status_code == 401, (op, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Traceback" not in answer.text


def test_every_operation_refuses_the_wrong_role_and_audits_it(api: TestClient) -> None:
    ids = identifiers(api)
    admin = bearer(api, "ada")
    wrong = []
    for op in operations(ids):
        if op.wrong is None:
            continue
        path = concrete(op, ids, api, admin)
        headers = bearer(api, op.wrong)
        trail = f"/v1/audit/events?actor={op.wrong}&limit=500"
        before = api.get(trail, headers=admin).json()["items"]
        answer = call(api, op, path, headers)
        after = api.get(trail, headers=admin).json()["items"]
        audited = len(after) == len(before) + 1 and after[0]["action"].endswith(".denied")
        if answer.status_code != 403 or answer.json()["code"] != "permission_denied" or not audited:
            wrong.append((op.method, op.path, answer.status_code, audited, answer.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


def test_every_operation_answers_the_right_role(api: TestClient) -> None:
    ids = identifiers(api)
    admin = bearer(api, "ada")
    wrong = []
    for op in operations(ids):
        headers = bearer(api, op.right)
        answer = call(api, op, concrete(op, ids, api, admin), headers)
        if answer.status_code != op.status:
            wrong.append((op.method, op.path, answer.status_code, answer.text[:300]))
    assert wrong == [], "\n".join(map(str, wrong))
