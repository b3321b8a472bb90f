"""A running server follows the registry (uvicorn on a free port, httpx, SQLite and PostgreSQL): a
production or alias move is swapped in while requests keep coming, none of them failing; a pinned
NAME:VERSION never moves; a new version whose bundle fails verification is refused and the old
one keeps serving until the bundle is whole again."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from medops.caller import Caller
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.server.guard import ServerOptions
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import PASSWORD

INTERVAL = 0.05  # seconds between registry checks: short, so a test waits little for a swap
WAIT = 60.0  # a bound on every wait for the server to catch up, not a measurement


@dataclass
class Registry:
    ws: Workspace
    run: str
    services: Services
    headers: dict[str, str]  # pat's token: the predictor role


@pytest.fixture
def live(registry: tuple[Workspace, str]) -> Registry:
    """``readmission`` version 1 in production, and a token of the integration user pat."""
    ws, run = registry
    _approved_version(ws, run)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    services = Services(ws)
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, token = services.identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    return Registry(ws, run, services, {"Authorization": f"Bearer {token}"})


def _approved_version(ws: Workspace, run: str, name: str = "readmission") -> int:
    version = versions.register(ws, run, name, actor="alice").version
    approvals.approve(ws, (name, version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, (name, version), "victor", PASSWORD, "validator")
    return version


def _serving(live: Registry, specs: list[str]) -> AbstractContextManager[str]:
    app = create_app(live.services, live.services.serving.load(specs), ServerOptions(follow_interval=INTERVAL))
    return serving_in_thread(app, start_timeout=10.0)


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def _served_version(http: httpx.Client, name: str = "readmission") -> int:
    return int(http.get(f"/v1/models/{name}").json()["version"])


def _metric(http: httpx.Client, name: str, **labels: str) -> float:
    """A sample of /metrics (0 when the series is absent)."""
    text = http.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{wanted}}}" if labels else name
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class Load:
    """Threads posting the example row to predict without pause, each keeping every answer in order."""

    def __init__(self, url: str, headers: dict[str, str], row: dict[str, Any], threads: int = 4) -> None:
        self.url, self.headers, self.row = url, headers, row
        self.answers: list[list[tuple[int, int | None]]] = [[] for _ in range(threads)]  # (status, version)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)

    def _send(self, i: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/v1/models/readmission/predict", json=self.row)
                except httpx.HTTPError:
                    self.answers[i].append((0, None))  # no answer at all counts as a failure too
                    continue
                ok = answer.status_code == 200
                self.answers[i].append((answer.status_code, answer.json()["predictions"][0]["version"] if ok else None))

    def runs(self) -> list[list[int | None]]:
        """Each thread's versions in the order answered, a run of equal ones counted once."""
        runs: list[list[int | None]] = []
        for answers in self.answers:
            seen = [version for _, version in list(answers)]
            runs.append([v for j, v in enumerate(seen) if j == 0 or seen[j - 1] != v])
        return runs

    def failures(self) -> list[int]:
        return [status for answers in self.answers for status, _ in list(answers) if status != 200]


def test_production_moves_are_swapped_in_under_load_and_no_request_fails(
    live: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="medops.serving.follow")
    v2 = _approved_version(live.ws, live.run)
    first, second = (versions.get(live.ws, "readmission", v).artifact_sha256 for v in (1, v2))
    with _serving(live, ["readmission"]) as url, httpx.Client(base_url=url, headers=live.headers) as http:
        row = http.get("/v1/models/readmission").json()["example"]
        with Load(url, live.headers, row) as load:
            _wait_for(lambda: all(len(a) >= 3 for a in load.answers), "every thread answered")
            stages.promote(live.ws, "readmission", v2, "production", actor="ming", reason="better calibrated")
            _wait_for(lambda: any(v2 in run for run in load.runs()), "an answer from version 2")
            assert http.get("/readyz").status_code == 200  # ready throughout: a slot always holds a verified model
            assert http.get("/v1/models").json()["models"][0]["version"] == v2
            detail = http.get("/v1/models/readmission").json()
            assert (detail["version"], detail["bundle_sha256"], detail["stage"]) == (v2, second, "production")
            operation = http.get("/openapi.json").json()["paths"]["/v1/models/readmission/predict"]["post"]
            assert operation["summary"] == f"Score rows with readmission version {v2}"

            stages.rollback(live.ws, "readmission", actor="ming", reason="back to the version we know")
            _wait_for(lambda: any(run[-2:] == [v2, 1] for run in load.runs()), "version 1 again after version 2")
            _wait_for(lambda: all(len(a) >= 3 and a[-1][1] == 1 for a in load.answers), "every thread on version 1")
        assert load.failures() == []
        assert sum(len(a) for a in load.answers) >= 12
        for run in load.runs():  # each thread saw the versions move forward, never back and forth
            assert run in ([1], [1, v2, 1]), run
        assert _served_version(http) == 1
        operation = http.get("/openapi.json").json()["paths"]["/v1/models/readmission/predict"]["post"]
        assert operation["summary"] == "Score rows with readmission version 1"
        assert _metric(http, "medops_model_swaps_total", model="readmission", version=str(v2)) == 1
        assert _metric(http, "medops_model_swaps_total", model="readmission", version="1") == 1
        info = {"model": "readmission", "bundle_sha256": first, "version": "1"}
        assert _metric(http, "medops_model_info", **info) == 1
        gone = {"model": "readmission", "bundle_sha256": second, "version": str(v2)}
        assert (
            "medops_model_info{" + ",".join(f'{k}="{v}"' for k, v in sorted(gone.items()))
            not in http.get("/metrics").text
        )
    swaps = [r.getMessage() for r in caplog.records if "in place of" in r.getMessage()]
    forward = f"version {v2} (bundle {second}) in place of version 1 (bundle {first})"
    back = f"version 1 (bundle {first}) in place of version {v2} (bundle {second})"
    named = "the version readmission names now"
    assert swaps == [f"readmission: serving {forward}, {named}", f"readmission: serving {back}, {named}"]


def test_an_alias_move_is_followed_and_the_new_bundle_answers_by_its_own_schema(live: Registry) -> None:
    from medops.evaluation.records import record
    from medops.training import Tracker
    from tests.factories import evaluate_run, govern

    stages.set_alias(live.ws, "readmission", "champion", 1, actor="ming", reason="the live model")
    with _serving(live, ["readmission@champion"]) as url, httpx.Client(base_url=url, headers=live.headers) as http:
        before = http.get("/v1/models/readmission").json()
        months = {**before["example"], "age": 65 * 12}  # outside the trained range: version 1 refuses it
        assert http.post("/v1/models/readmission/predict", json=months).status_code == 422

        def body_schema() -> dict[str, Any]:
            post = http.get("/openapi.json").json()["paths"]["/v1/models/readmission/predict"]["post"]
            schema: dict[str, Any] = post["requestBody"]["content"]["application/json"]["schema"]
            return schema["oneOf"][0]["properties"]["age"]

        assert "maximum" in body_schema()  # under reject, the trained range is part of the schema

        govern(live.ws, serving={"out_of_range": "flag"})
        flagging = evaluate_run(Tracker(live.ws), live.run, serving={"out_of_range": "flag"})
        record(live.ws, flagging, "", "", "", actor="victor")
        v2 = versions.register(live.ws, live.run, "readmission", actor="alice").version
        assert _served_version(http) == 1  # a new version is not the alias's until the alias moves
        stages.set_alias(live.ws, "readmission", "champion", v2, actor="ming", reason="flag, don't refuse")
        _wait_for(lambda: _served_version(http) == v2, "the alias's new version")

        after = http.get("/v1/models/readmission").json()
        assert after["out_of_range"] == "flag" and after["stage"] == "none"
        assert after["bundle_sha256"] == versions.get(live.ws, "readmission", v2).artifact_sha256
        answer = http.post("/v1/models/readmission/predict", json=months)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["predictions"]
        assert row["version"] == v2 and row["out_of_range"] == ["age"]
        assert "maximum" not in body_schema()  # the document follows the version served


def test_a_pinned_version_is_never_followed(live: Registry) -> None:
    stages.set_alias(live.ws, "readmission", "champion", 1, actor="ming", reason="the live model")
    _approved_version(live.ws, live.run, "sepsis")
    stages.set_alias(live.ws, "sepsis", "live", 1, actor="ming", reason="serve it")
    with (
        _serving(live, ["readmission:1", "sepsis@live"]) as url,
        httpx.Client(base_url=url, headers=live.headers) as http,
    ):
        v2 = _approved_version(live.ws, live.run)
        stages.promote(live.ws, "readmission", v2, "production", actor="ming", reason="better")
        stages.set_alias(live.ws, "readmission", "champion", v2, actor="ming", reason="better")
        sepsis = _approved_version(live.ws, live.run, "sepsis")
        stages.set_alias(live.ws, "sepsis", "live", sepsis, actor="ming", reason="better")
        _wait_for(lambda: _served_version(http, "sepsis") == sepsis, "sepsis's new version")
        # two more whole passes over the served models after every move: a followed readmission would have moved
        checks = _metric(http, "medops_registry_checks_total")
        _wait_for(lambda: _metric(http, "medops_registry_checks_total") >= checks + 2, "two more passes")
        assert _served_version(http) == 1
        row = http.get("/v1/models/readmission").json()["example"]
        answer = http.post("/v1/models/readmission/predict", json=row)
        assert answer.json()["predictions"][0]["version"] == 1
        assert _metric(http, "medops_model_swaps_total", model="readmission", version=str(v2)) == 0
        assert _metric(http, "medops_model_swaps_total", model="sepsis", version=str(sepsis)) == 1


def _artifact_file(ws: Workspace, digest: str) -> Path:
    return Path(ws.settings.artifact_root) / "sha256" / digest[:2] / digest[2:4] / digest


def test_a_version_whose_bundle_fails_verification_is_not_swapped_in(
    live: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="medops.serving.follow")
    v2 = _approved_version(live.ws, live.run)
    bundle = _artifact_file(live.ws, versions.get(live.ws, "readmission", v2).artifact_sha256)
    whole, mode = bundle.read_bytes(), bundle.stat().st_mode
    with _serving(live, ["readmission"]) as url, httpx.Client(base_url=url, headers=live.headers) as http:
        row = http.get("/v1/models/readmission").json()["example"]
        bundle.chmod(0o600)
        bundle.write_bytes(whole[:-64] + bytes(b ^ 0xFF for b in whole[-64:]))  # altered in the artifact store
        stages.promote(live.ws, "readmission", v2, "production", actor="ming", reason="better")

        def refused() -> float:
            return _metric(http, "medops_model_swap_failures_total", model="readmission", reason="integrity_error")

        with Load(url, live.headers, row, threads=2) as load:
            _wait_for(lambda: refused() >= 3, "the altered bundle refused on three checks")
            assert http.get("/readyz").status_code == 200
            assert _served_version(http) == 1
            answer = http.post("/v1/models/readmission/predict", json=row)
            assert answer.json()["predictions"][0]["version"] == 1
            assert _metric(http, "medops_model_swaps_total", model="readmission", version=str(v2)) == 0

            bundle.write_bytes(whole)  # restored: the next check verifies it and swaps it in
            bundle.chmod(mode)
            _wait_for(lambda: _served_version(http) == v2, "the restored version")
        assert load.failures() == []
        assert {v for run in load.runs() for v in run} <= {1, v2}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # the same refusal on every check is counted each time and logged once
    message = errors[0].getMessage()
    assert f"version {v2} can't be served (integrity_error" in message and "still serving version 1" in message
