"""Shadow and canary beside a served model, over real HTTP: the shadow is logged and never returned,
the canary answers its share of rows (sticky by entity) and must hold production's evidence; a slow
request gets 504. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from medops.caller import Caller
from medops.errors import InvalidInput, PermissionDenied
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.server.guard import ServerOptions
from medops.server.predict import INLINE_ROWS
from medops.services import Services
from medops.serving.prediction_log import PredictionFilter
from medops.serving.rollout import Routing, plan, to_canary
from medops.workspace import Workspace
from tests.factories import PASSWORD

READER = Caller("ming", channel="cli")


def _version(ws: Workspace, run_id: str, *, approved: bool) -> int:
    version = versions.register(ws, run_id, "readmission", actor="alice").version
    if approved:
        approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
        approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")
    return version


@pytest.fixture
def three(registry: tuple[Workspace, str]) -> tuple[Workspace, Services, str]:
    """readmission 1 in production, 2 approved (a canary may use it), 3 not approved; pat predicts."""
    ws, run_id = registry
    _version(ws, run_id, approved=True)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    _version(ws, run_id, approved=True)
    _version(ws, run_id, approved=False)
    services = Services(ws)
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, token = services.identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    return ws, services, token


def test_the_canary_answers_its_share_and_the_shadow_is_logged_never_returned(
    three: tuple[Workspace, Services, str],
) -> None:
    ws, services, token = three
    models = services.serving.load(["readmission"])
    declared = services.serving.plan_rollouts(["readmission"], ["readmission=readmission:3"], ["readmission:2"], ["30"])
    rollouts = services.serving.rollouts(models, declared)
    app = create_app(services, models, ServerOptions(max_rows=1_000), rollouts)
    answered: Counter[tuple[int, str]] = Counter()
    with (
        serving_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
    ):
        detail = http.get("/v1/models/readmission").json()
        assert detail["version"] == 1
        assert detail["rollout"]["canary"]["version"] == 2 and detail["rollout"]["canary"]["percent"] == 30
        assert detail["rollout"]["shadow"]["version"] == 3
        example = detail["example"]
        for _ in range(2):
            rows = http.post("/v1/models/readmission/predict", json=[example] * 1_000).json()["predictions"]
            for row in rows:
                answered[(row["version"], row.get("variant", "champion"))] += 1
        metrics = _after_the_shadow(http, rows=2_000)
    assert set(answered) == {(1, "champion"), (2, "canary")}  # the shadow (3) never answers
    share = answered[(2, "canary")] / 2_000
    assert 0.26 < share < 0.34  # rows without an entity go to the canary at random, in its share (±4 sd)
    assert 'variant="canary"' in metrics and 'variant="shadow"' in metrics

    logged = services.predictions.list(READER, PredictionFilter(), limit=10_000)
    by_variant = Counter((p.variant, p.version) for p in logged)
    assert by_variant == {
        ("champion", 1): answered[(1, "champion")],
        ("canary", 2): answered[(2, "canary")],
        ("shadow", 3): 2_000,
    }
    requests = {p.request_id for p in logged if p.variant != "shadow"}
    assert {p.request_id for p in logged if p.variant == "shadow"} == requests  # beside each request answered
    assert services.predictions.replay(READER, PredictionFilter(variant="shadow")).identical


def _after_the_shadow(http: httpx.Client, *, rows: int) -> str:
    """The /metrics text once the shadow has counted ``rows``: it scores after the answer is sent."""
    deadline = time.monotonic() + 30
    while True:
        text = http.get("/metrics").text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("medops_predictions_total{") and 'variant="shadow"' in line
        )
        if counted >= rows or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_a_canary_is_held_to_production_and_declarations_are_checked(three: tuple[Workspace, Services, str]) -> None:
    _, services, _ = three
    models = services.serving.load(["readmission"])
    unapproved = services.serving.plan_rollouts(["readmission"], [], ["readmission:3"], ["readmission=5"])
    with pytest.raises(PermissionDenied) as refused:
        services.serving.rollouts(models, unapproved)
    assert refused.value.code == "canary_not_approved"
    shadow_only = services.serving.plan_rollouts(["readmission"], ["readmission:3"], [], [])
    assert services.serving.rollouts(models, shadow_only)["readmission"].now().shadow is not None

    for shadows, canaries, percents, code in [
        ([], ["sepsis:1"], ["10"], "variant_without_model"),
        ([], ["readmission:2"], [], "invalid_canary_share"),
        ([], ["readmission:2"], ["150"], "invalid_canary_share"),
        ([], ["readmission:2"], ["ten"], "invalid_canary_share"),
        (["readmission:2", "readmission:3"], [], [], "variant_twice"),
        ([], [], ["readmission=10"], "variant_without_model"),
    ]:
        with pytest.raises(InvalidInput) as bad:
            plan(["readmission"], shadows, canaries, percents)
        assert bad.value.code == code, (shadows, canaries, percents)


def test_canary_routing_is_sticky_by_entity_and_grows_with_its_share() -> None:
    champion = SimpleNamespace(name="readmission", lookup=SimpleNamespace(keys={"patient_id": None}))
    rows = [{"patient_id": f"MRN-{i:05d}"} for i in range(10_000)]

    def chosen(percent: float) -> list[bool]:
        routing = Routing(cast(Any, champion), cast(Any, object()), percent)
        return to_canary(routing, rows)

    ten, thirty = chosen(10), chosen(30)
    assert chosen(10) == ten  # the same patient, the same variant, every time
    assert 0.08 < sum(ten) / len(rows) < 0.12 and 0.27 < sum(thirty) / len(rows) < 0.33
    assert all(t for s, t in zip(ten, thirty, strict=True) if s)  # raising the share keeps who was in the canary
    assert to_canary(Routing(cast(Any, champion)), rows) == [False] * len(rows)


def test_a_request_not_answered_in_time_gets_504(
    three: tuple[Workspace, Services, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, services, token = three
    app = create_app(services, services.serving.load(["readmission"]), ServerOptions(request_timeout=0.2))

    def slow(*_args: Any, **_kwargs: Any) -> None:
        time.sleep(1.0)

    with (
        serving_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
    ):
        example = http.get("/v1/models/readmission").json()["example"]
        monkeypatch.setattr(services.serving, "predict", slow)
        rows = [example] * (INLINE_ROWS + 1)  # more than the event loop scores itself: scored on a worker thread
        answer = http.post("/v1/models/readmission/predict", json=rows)
        assert answer.status_code == 504 and answer.json()["error"]["code"] == "timeout"
        assert "request_id" in answer.json()["error"]


def test_a_plain_request_whose_log_write_stalls_gets_504(
    three: tuple[Workspace, Services, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane (medops.server.predict) answers under the same timeout: a stalled disk is a 504, not a hang.

    In before_answer, where a request waits for the writer process; in background the server writes to the
    file cache itself, which waits for a disk only once the kernel's dirty pages reach their limit."""
    import dataclasses

    import psutil

    _, services, token = three
    settings = dataclasses.replace(services.platform.settings, prediction_log_sync="before_answer")
    monkeypatch.setattr(services.platform, "settings", settings)
    app = create_app(services, services.serving.load(["readmission"]), ServerOptions(request_timeout=0.2))
    with (
        serving_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
    ):
        example = http.get("/v1/models/readmission").json()["example"]
        (writer,) = [
            p for p in psutil.Process().children(recursive=True) if "medops.serving.spool_writer" in p.cmdline()
        ]
        writer.suspend()  # the log's writer stalls, as on a disk that stopped answering
        try:
            answer = http.post("/v1/models/readmission/predict", json=example)
            assert answer.status_code == 504 and answer.json()["error"]["code"] == "timeout"
        finally:
            writer.resume()  # the stalled write finishes (its answer was never sent); the disk is back
        assert http.post("/v1/models/readmission/predict", json=example).status_code == 200


def test_a_followed_canary_alias_moved_to_an_unapproved_version_is_not_swapped_in(
    three: tuple[Workspace, Services, str],
) -> None:
    ws, services, _ = three
    stages.set_alias(ws, "readmission", "next", 2, actor="ming", reason="canary")
    models = services.serving.load(["readmission"])
    declared = services.serving.plan_rollouts(["readmission"], [], ["readmission@next"], ["10"])
    rollout = services.serving.rollouts(models, declared)["readmission"]
    follower = services.serving.follower(rollout.slots("readmission"), interval=1.0)
    stages.set_alias(ws, "readmission", "next", 3, actor="ming", reason="a hurried move")  # 3 has no approvals
    assert follower.check() == [] and rollout.now().canary is not None
    assert rollout.now().canary.version == 2  # the approved canary keeps answering
    stages.set_alias(ws, "readmission", "next", 1, actor="ming", reason="back to production's evidence")
    assert follower.check() == ["readmission/canary"] and rollout.now().canary.version == 1
