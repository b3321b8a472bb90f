"""The serving API over real HTTP (uvicorn on a free port, httpx), on SQLite and PostgreSQL:
predictions from the registered production version, field-level 422s without the values sent,
a token with the predict role on every operation but the probes, 413s, and no stack trace out."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest

from medops.caller import Caller
from medops.errors import DatabaseUnreachable
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.registry.predictor import load_model
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.server.guard import ServerOptions
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import PASSWORD

SECRET_NUMBER = 123456.789
SECRET_TEXT = "Jane-Doe-MRN-0042"


@dataclass
class Served:
    url: str
    ws: Workspace
    services: Services
    token: str  # pat: the predictor role
    no_role: str  # alice: a data scientist, no predict permission


def running(app: Any) -> AbstractContextManager[str]:
    """The app on uvicorn in a thread, on a free loopback port; stopped on exit."""
    return serving_in_thread(app, start_timeout=5.0)


def _promote(ws: Workspace, run: str) -> None:
    version = versions.register(ws, run, "readmission", actor="alice").version
    approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")
    stages.promote(ws, "readmission", version, "production", actor="ming", reason="go live")


def _tokens(services: Services) -> tuple[str, str]:
    ws = services.platform
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    admin = Caller("admin", channel="token")
    _, token = services.identity.create_token(admin, "ehr", username="pat")
    _, no_role = services.identity.create_token(admin, "notebook", username="alice")
    return token, no_role


@pytest.fixture
def served(registry: tuple[Workspace, str]) -> Iterator[Served]:
    ws, run = registry
    _promote(ws, run)
    services = Services(ws)
    token, no_role = _tokens(services)
    options = ServerOptions(max_body_bytes=20_000, max_rows=50)
    app = create_app(services, services.serving.load(["readmission"]), options)
    with running(app) as url:
        yield Served(url, ws, services, token, no_role)


def _client(served: Served, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=served.url, headers=headers, timeout=30)


def test_the_example_is_accepted_and_scored_like_the_registered_bundle(served: Served) -> None:
    with _client(served, served.token) as http:
        listed = http.get("/v1/models").json()["models"]
        info = versions.get(served.ws, "readmission", 1)
        summary = {"name": "readmission", "version": 1, "bundle_sha256": info.artifact_sha256, "stage": "production"}
        assert listed == [summary]
        detail = http.get("/v1/models/readmission").json()
        assert detail["bundle_sha256"] == info.artifact_sha256 and 0 < detail["threshold"] < 1
        assert detail["gates"]["evaluation"] == info.evaluation_id and detail["gates"]["passed"] is True
        assert detail["gates"]["gates"] and all(g["passed"] for g in detail["gates"]["gates"])
        assert [f["name"] for f in detail["input_schema"]["features"]] == ["age", "los", "frailty_seen"]
        example = detail["example"]

        one = http.post("/v1/models/readmission/predict", json=example)
        assert one.status_code == 200, one.text
        (row,) = one.json()["predictions"]
        predictor = load_model(served.ws, "readmission:1")
        expected = float(predictor.predict_proba(pd.DataFrame([example]))[0])
        assert row["probability"] == pytest.approx(expected)
        assert row["decision"] == int(expected >= predictor.threshold)
        assert (row["model"], row["version"], row["bundle_sha256"]) == ("readmission", 1, info.artifact_sha256)
        uuid.UUID(row["prediction_id"])

        rows = [example, {**example, "age": detail["input_schema"]["features"][0]["max"]}, example]
        batch = http.post("/v1/models/readmission/predict", json=rows).json()["predictions"]
        assert len(batch) == 3 and len({r["prediction_id"] for r in batch}) == 3
        assert batch[0]["probability"] == pytest.approx(batch[2]["probability"])

        assert http.post("/v1/models/other/predict", json=example).status_code == 404
        assert http.get("/v1/models/other").json()["error"]["code"] == "model_not_served"

        metrics = http.get("/metrics").text
        assert "medops_predictions_total{decision=" in metrics and 'version="1"' in metrics
        assert 'medops_request_seconds_bucket{le="0.005",route="/v1/models/readmission/predict"}' in metrics
        labels = f'bundle_sha256="{info.artifact_sha256}",model="readmission",version="1"'
        assert f"medops_model_info{{{labels}}} 1.0" in metrics
    with _client(served) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["database"] is True


def _lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What the lane said of each predict request from now on: True, it answered; False, the route did."""
    from medops.server import predict

    answered: list[bool] = []
    lane_call = predict.Lane.__call__

    async def counting(self: Any, scope: Any, body: bytes, send: Any) -> bool:
        answered.append(await lane_call(self, scope, body, send))
        return answered[-1]

    monkeypatch.setattr(predict.Lane, "__call__", counting)
    return answered


def test_the_lane_and_the_route_give_the_same_answer(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain request is answered before FastAPI (medops.server.predict.Lane); one with a query goes
    through the route. Same fields, same numbers, one request id header, the same metrics."""
    answered = _lane_answers(monkeypatch)
    with _client(served, served.token) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        answers = []
        for query in ("", "?explain=false"):
            answer = http.post(f"/v1/models/readmission/predict{query}", json=[example, example])
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
            assert answer.headers.get_list("x-request-id") == [answer.json()["request_id"]]
            answers.append(answer.json()["predictions"])
        assert answered == [True, False]
        for lane, route in zip(*answers, strict=True):
            assert lane.keys() == route.keys() and lane.pop("prediction_id") != route.pop("prediction_id")
            assert lane == route
        refused = http.post("/v1/models/readmission/predict", json={**example, "age": SECRET_NUMBER})
        assert refused.status_code == 422 and answered[-1] is False  # every refusal is the route's
        assert refused.headers.get_list("x-request-id") == [refused.json()["error"]["request_id"]]
        metrics = http.get("/metrics").text
        assert 'decision="0",model="readmission",variant="champion",version="1"} 4.0' in metrics or (
            'decision="1",model="readmission",variant="champion",version="1"} 4.0' in metrics
        )
    with _client(served) as anonymous:
        refused = anonymous.post("/v1/models/readmission/predict", json=example)
        assert refused.status_code == 401 and len(refused.headers.get_list("x-request-id")) == 1


def test_a_batch_above_the_inline_rows_is_the_lane_s_too(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """More than INLINE_ROWS plain rows: answered by the lane (scored on a worker thread) as the route
    answers them; a bad row among them is named by the route, numbered as sent."""
    from medops.server import predict

    answered = _lane_answers(monkeypatch)
    with _client(served, served.token) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        rows = [{**example, "age": example["age"] + i % 3} for i in range(predict.INLINE_ROWS + 8)]
        by_lane = http.post("/v1/models/readmission/predict", json=rows)
        by_route = http.post("/v1/models/readmission/predict?explain=false", json=rows)
        assert by_lane.status_code == by_route.status_code == 200 and answered == [True, False]
        lane_rows, route_rows = by_lane.json()["predictions"], by_route.json()["predictions"]
        assert len(lane_rows) == len(rows) and len({r["prediction_id"] for r in lane_rows}) == len(rows)
        for lane, route in zip(lane_rows, route_rows, strict=True):
            assert lane.pop("prediction_id") != route.pop("prediction_id") and lane == route
        bad = [*rows[:-1], {**example, "age": SECRET_NUMBER}]
        refused = http.post("/v1/models/readmission/predict", json=bad)
        assert refused.status_code == 422 and answered[-1] is False
        fields = refused.json()["error"]["fields"]
        assert [(f["row"], f["field"], f["code"]) for f in fields] == [(len(rows) - 1, "age", "out_of_range")]
        assert "123456" not in refused.text


def test_each_bad_field_gets_a_422_that_never_echoes_it(served: Served) -> None:
    with _client(served, served.token) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({k: v for k, v in example.items() if k != "age"}, "age", "missing_field"),
            ({**example, "age": SECRET_TEXT}, "age", "not_a_number"),
            ({**example, "los": [SECRET_NUMBER]}, "los", "wrong_type"),
            ({**example, "age": SECRET_NUMBER}, "age", "out_of_range"),
            ({**example, "temperature_f": SECRET_NUMBER}, "temperature_f", "unknown_field"),
        ]
        for body, field, code in cases:
            answer = http.post("/v1/models/readmission/predict", json=[example, body])
            assert answer.status_code == 422, (field, code, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_rows" and error["request_id"] == answer.headers["x-request-id"]
            assert [(f["row"], f["field"], f["code"]) for f in error["fields"]] == [(1, field, code)]
            assert SECRET_TEXT not in answer.text and "123456" not in answer.text
        raw = json.dumps(example).replace(str(example["los"]), "NaN", 1)  # JSON has no NaN; Python's parser takes it
        answer = http.post("/v1/models/readmission/predict", content=raw, headers={"content-type": "application/json"})
        assert [f["code"] for f in answer.json()["error"]["fields"]] == ["not_finite"]
        not_json = http.post("/v1/models/readmission/predict", content=b"{not json")
        assert not_json.json()["error"]["code"] == "invalid_json"
        # a field named twice: Python's parser would score the last value, other readers of the log the first
        body = json.dumps(example)[:-1] + f', "age": {SECRET_NUMBER}}}'
        for path in ("/v1/models/readmission/predict", "/v1/models/readmission/predict?explain=false"):
            for text in (body, f"[{json.dumps(example)}, {body}]"):
                twice = http.post(path, content=text, headers={"content-type": "application/json"})
                assert twice.status_code == 422, twice.text
                assert (
                    twice.json()["error"]["code"] == "duplicate_field" and "'age'" in twice.json()["error"]["message"]
                )
                assert "123456" not in twice.text
        assert http.post("/v1/models/readmission/predict", json=[]).status_code == 422
        metrics = http.get("/metrics").text
        assert 'medops_rejected_inputs_total{model="readmission",reason="out_of_range",version="1"} 1.0' in metrics


def test_every_operation_but_the_probes_needs_a_token_with_the_predict_role(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(served, served.token) as http:
        spec = http.get("/openapi.json").json()
    assert spec["paths"]["/v1/models/readmission/predict"]["post"]["requestBody"]["required"] is True
    operations = [(m.upper(), p.replace("{name}", "readmission")) for p, ops in spec["paths"].items() for m in ops]
    operations.append(("GET", "/openapi.json"))
    assert len(operations) >= 7
    for method, path in operations:
        expected = {"anonymous": 401, "wrong": 401, "no_role": 403}
        if path in ("/healthz", "/readyz"):
            expected = {"anonymous": 200, "wrong": 200, "no_role": 200}
        callers = [
            ("anonymous", None),
            ("wrong", "mdo_" + "x" * 40),
            ("wrong", "x" * 5000),
            ("no_role", served.no_role),
        ]
        for who, token in callers:
            with _client(served, token) as http:
                answer = http.request(method, path, json={"age": SECRET_NUMBER})
            assert answer.status_code == expected[who], (method, path, who, answer.text)
            if answer.status_code == 401:
                assert answer.headers["www-authenticate"] == "Bearer"
            assert "Traceback" not in answer.text and "123456" not in answer.text

    def unreachable() -> Any:
        raise DatabaseUnreachable("the metadata database did not answer")

    with monkeypatch.context() as patch, _client(served, served.token) as http:
        patch.setattr(served.services.serving.admissions, "epoch", unreachable)  # the token check's first read
        down = http.get("/v1/models")
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"  # not a 401: nothing refused
    served.services.identity.revoke_token(Caller("admin", channel="token"), _token_id(served, "pat"), reason="test")
    with _client(served, served.token) as http:
        assert http.get("/v1/models").status_code == 401  # a revoked token is refused at once


def _token_id(served: Served, user: str) -> str:
    (view,) = served.services.identity.tokens(Caller("admin", channel="token"), username=user)
    return view.id


def test_size_limits_and_a_failure_without_a_trace(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    with _client(served, served.token) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        big = http.post("/v1/models/readmission/predict", content=b"[" + b" " * 30_000 + b"]")
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"["
            for _ in range(40):
                yield b" " * 1000
            yield b"]"

        streamed = http.post("/v1/models/readmission/predict", content=chunks())
        assert streamed.status_code == 413
        many = http.post("/v1/models/readmission/predict", json=[example] * 51)
        assert many.status_code == 413 and many.json()["error"]["code"] == "too_many_rows"
        assert http.post("/v1/models/readmission/predict", json=[example] * 50).status_code == 200

        def broken(*args: Any) -> Any:
            raise RuntimeError(f"internal detail {SECRET_TEXT}")

        monkeypatch.setattr(served.services.serving, "predict", broken)
        failed = http.post("/v1/models/readmission/predict", json=example)
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "internal_error"
        assert failed.json()["error"]["request_id"] == failed.headers["x-request-id"]
        assert SECRET_TEXT not in failed.text and "Traceback" not in failed.text and "RuntimeError" not in failed.text
        assert 'medops_errors_total{route="/v1/models/readmission/predict"} 1.0' in http.get("/metrics").text


def test_metrics_open_to_a_scraper_only_when_configured(served: Served) -> None:
    models = served.services.serving.load(["readmission"])
    with running(create_app(served.services, models, ServerOptions(metrics_public=True))) as url:
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401


def test_a_model_whose_policy_is_flag_scores_out_of_range_rows_and_names_the_fields(served: Served) -> None:
    from medops.evaluation.records import record
    from medops.training import Tracker
    from tests.factories import evaluate_run, govern

    ws, tracker = served.ws, Tracker(served.ws)
    run_id = versions.get(ws, "readmission", 1).run_id
    assert run_id is not None
    govern(ws, serving={"out_of_range": "flag"})
    record(ws, evaluate_run(tracker, run_id, serving={"out_of_range": "flag"}), "", "", "", actor="victor")
    flagging = versions.register(ws, run_id, "readmission", actor="alice").version
    models = served.services.serving.load([f"readmission:{flagging}"])
    with running(create_app(served.services, models)) as url:
        headers = {"Authorization": f"Bearer {served.token}"}
        detail = httpx.get(f"{url}/v1/models/readmission", headers=headers).json()
        assert detail["out_of_range"] == "flag" and detail["version"] == flagging
        months = {**detail["example"], "age": 65 * 12}  # months where years are expected
        answer = httpx.post(f"{url}/v1/models/readmission/predict", json=[detail["example"], months], headers=headers)
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["predictions"]
        assert "out_of_range" not in first and second["out_of_range"] == ["age"]
        wrong_type = httpx.post(
            f"{url}/v1/models/readmission/predict", json={**detail["example"], "age": "65"}, headers=headers
        )
        assert wrong_type.status_code == 422  # the policy covers ranges and categories, never a wrong type
        metrics = httpx.get(f"{url}/metrics", headers=headers).text
        assert f'medops_flagged_inputs_total{{model="readmission",version="{flagging}"}} 1.0' in metrics


def _arrow(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def test_a_batch_as_arrow_or_parquet_is_scored_like_json_and_checked_the_same(served: Served) -> None:
    import pyarrow as pa

    with _client(served, served.token) as http:
        example = http.get("/v1/models/readmission").json()["example"]
        rows = [example, {**example, "los": float(example["los"]) / 2}]
        as_json = http.post("/v1/models/readmission/predict", json=rows).json()["predictions"]
        table = pa.Table.from_pylist(rows)
        for kind, encode in (("arrow.stream", _arrow), ("parquet", _parquet)):
            headers = {"content-type": f"application/vnd.apache.{kind}"}
            answer = http.post("/v1/models/readmission/predict", content=encode(table), headers=headers)
            assert answer.status_code == 200, answer.text
            scored = answer.json()["predictions"]
            assert [r["probability"] for r in scored] == pytest.approx([r["probability"] for r in as_json])
            bad = pa.Table.from_pylist([{**example, "los": float("nan"), "age": SECRET_NUMBER}])
            refused = http.post("/v1/models/readmission/predict", content=encode(bad), headers=headers)
            assert refused.status_code == 422 and "123456" not in refused.text
            fields = {(f["field"], f["code"]) for f in refused.json()["error"]["fields"]}
            assert fields == {("los", "not_finite"), ("age", "out_of_range")}
            garbage = http.post("/v1/models/readmission/predict", content=b"PAR1 not a table", headers=headers)
            assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_table"
            many = encode(pa.Table.from_pylist([example] * 51))
            assert http.post("/v1/models/readmission/predict", content=many, headers=headers).status_code == 413
            twice = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["age", "age"])
            doubled = http.post("/v1/models/readmission/predict", content=encode(twice), headers=headers)
            # Arrow allows a name twice and is refused for it; the Parquet reader refuses such a file itself
            expected = "duplicate_field" if kind == "arrow.stream" else "invalid_table"
            assert doubled.status_code == 422 and doubled.json()["error"]["code"] == expected
        csv = http.post("/v1/models/readmission/predict", content=b"age\n60\n", headers={"content-type": "text/csv"})
        assert csv.status_code == 415


def test_a_lightgbm_version_with_a_category_is_served_as_its_bundle_scores(served: Served, tmp_path: Any) -> None:
    from medops.training import Tracker
    from medops.training.trainers import ModelSpec
    from tests.factories import TRAIN_FEATURES, train_run, training_rows

    run_id = train_run(
        Tracker(served.ws),
        tmp_path,
        "gbm",
        training_rows(),
        ModelSpec("lightgbm", {"n_estimators": 30}),
        TRAIN_FEATURES,
    )
    version = versions.register(served.ws, run_id, "gbm", actor="alice").version
    models = served.services.serving.load([f"gbm:{version}"])
    with running(create_app(served.services, models)) as url:
        headers = {"Authorization": f"Bearer {served.token}"}
        detail = httpx.get(f"{url}/v1/models/gbm", headers=headers).json()
        payer = next(f for f in detail["input_schema"]["features"] if f["name"] == "payer")
        assert payer["type"] == "category"
        rows = [{**detail["example"], "payer": category} for category in payer["categories"]]
        answer = httpx.post(f"{url}/v1/models/gbm/predict", json=rows, headers=headers)
        assert answer.status_code == 200, answer.text
        expected = load_model(served.ws, f"gbm:{version}").predict_proba(pd.DataFrame(rows))
        assert [r["probability"] for r in answer.json()["predictions"]] == pytest.approx(list(expected))
        unseen = httpx.post(
            f"{url}/v1/models/gbm/predict", json={**detail["example"], "payer": "self-pay"}, headers=headers
        )
        assert [(f["field"], f["code"]) for f in unseen.json()["error"]["fields"]] == [("payer", "unseen_category")]
        explained = httpx.post(f"{url}/v1/models/gbm/predict?explain=true", json=rows, headers=headers)
        assert explained.status_code == 200, explained.text
        for row in explained.json()["predictions"]:  # TreeSHAP; the payer's one-hot columns folded into one
            assert set(row["explanation"]["contributions"]) == {"age", "los", "payer"}
            _explained_sums(row)


def _explained_sums(row: dict[str, Any]) -> None:
    """base + contributions is the raw score, and the raw score (log-odds) gives the row's probability."""
    why = row["explanation"]
    assert why["scale"] == "log_odds"
    assert why["base"] + sum(why["contributions"].values()) == pytest.approx(why["raw_score"], rel=0, abs=1e-6)
    assert 1 / (1 + math.exp(-why["raw_score"])) == pytest.approx(row["probability"], rel=0, abs=1e-6)


def test_explain_true_adds_contributions_that_sum_to_the_raw_score(served: Served) -> None:
    from medops.serving.explain import explain

    with _client(served, served.token) as http:
        spec = http.get("/openapi.json").json()
        parameters = spec["paths"]["/v1/models/readmission/predict"]["post"]["parameters"]
        assert [(p["name"], p["in"], p["schema"]["type"]) for p in parameters] == [("explain", "query", "boolean")]
        example = http.get("/v1/models/readmission").json()["example"]
        rows = [example, {**example, "los": float(example["los"]) * 2, "frailty_seen": 1.5}]

        answer = http.post("/v1/models/readmission/predict", params={"explain": "true"}, json=rows)
        assert answer.status_code == 200, answer.text
        scored = answer.json()["predictions"]
        for row in scored:
            assert set(row["explanation"]["contributions"]) == {"age", "los", "frailty_seen"}
            _explained_sums(row)
        expected = explain(load_model(served.ws, "readmission:1"), pd.DataFrame(rows))
        for i, row in enumerate(scored):  # the same numbers medops.serving.explain gives for the registered bundle
            want = expected.row(i)
            assert row["explanation"]["contributions"] == pytest.approx(want["contributions"], rel=0, abs=1e-9)
            assert (row["explanation"]["base"], row["explanation"]["raw_score"]) == pytest.approx(
                (want["base"], want["raw_score"]), rel=0, abs=1e-9
            )
        # the second row's longer stay and frailty are what raise its score
        first, second = (r["explanation"]["contributions"] for r in scored)
        assert second["los"] > first["los"] and second["frailty_seen"] > first["frailty_seen"]

        plain = http.post("/v1/models/readmission/predict", json=rows).json()["predictions"]
        assert all("explanation" not in r for r in plain)
        assert [r["probability"] for r in plain] == pytest.approx([r["probability"] for r in scored])
        off = http.post("/v1/models/readmission/predict", params={"explain": "false"}, json=example)
        assert "explanation" not in off.json()["predictions"][0]
        bad = http.post("/v1/models/readmission/predict", params={"explain": SECRET_TEXT}, json=example)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_parameter"
        assert SECRET_TEXT not in bad.text
        refused = http.post("/v1/models/readmission/predict?explain=true", json={**example, "age": SECRET_NUMBER})
        assert refused.json()["error"]["code"] == "invalid_rows"  # the rows are checked first, explained or not


def test_explain_on_a_calibrated_model_is_a_422_not_explainable(served: Served, tmp_path: Any) -> None:
    from medops.training import Tracker
    from medops.training.trainers import ModelSpec
    from tests.factories import COHORT_FEATURES, cohort, train_run

    calibrated = ModelSpec("logistic_regression", {}, None, "isotonic")
    rows = cohort(900, biased=False)
    run_id = train_run(Tracker(served.ws), tmp_path, "calibrated", rows, calibrated, COHORT_FEATURES)
    version = versions.register(served.ws, run_id, "calibrated", actor="alice").version
    models = served.services.serving.load([f"calibrated:{version}"])
    with running(create_app(served.services, models)) as url:
        headers = {"Authorization": f"Bearer {served.token}"}
        example = httpx.get(f"{url}/v1/models/calibrated", headers=headers).json()["example"]
        asked = httpx.post(f"{url}/v1/models/calibrated/predict?explain=true", json=example, headers=headers)
        assert asked.status_code == 422, asked.text
        error = asked.json()["error"]
        assert error["code"] == "not_explainable" and "calibrated" in error["message"]
        assert error["request_id"] == asked.headers["x-request-id"] and "Traceback" not in asked.text
        plain = httpx.post(f"{url}/v1/models/calibrated/predict", json=example, headers=headers)
        assert plain.status_code == 200 and "explanation" not in plain.json()["predictions"][0]
        metrics = httpx.get(f"{url}/metrics", headers=headers).text
        assert "medops_errors_total{" not in metrics  # a refusal, not a server failure
