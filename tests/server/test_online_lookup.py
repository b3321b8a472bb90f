"""Predicting for a named entity over real HTTP: the server pseudonymizes the caller's id as ingest did,
reads the model's features from the online store (SQLite and Redis), computes its on-demand features,
and says per row which came back missing or stale; the raw id is in no answer and no log line."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.caller import Caller
from medops.data.datasets import get
from medops.data.deid import Pseudonymizer
from medops.data.ingest import TablePlan, ingest
from medops.data.sources import ParquetSource
from medops.errors import ConfigError
from medops.features import FeatureStore
from medops.identity import Role
from medops.registry import versions
from medops.registry.predictor import load_model
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.services import Services
from medops.serving import prediction_log
from medops.serving.prediction_log import LoggedPrediction, PredictionFilter
from medops.training import Tracker
from medops.training.train import TrainConfig, train
from medops.workspace import Workspace
from tests.factories import (
    LOGISTIC,
    PASSWORD,
    PSEUDONYM_KEY,
    REDIS,
    T0,
    events_table,
    feature_set,
    labels_frame,
    people_table,
)

FEATURES = ["hr", "hr_mean_30d", "a_count_60d", "birth_year", "age"]
AS_OF = T0 + timedelta(days=40)  # materialized then: hr (TTL 25 days) is stale by now, birth_year has no TTL
AT = "2025-02-10T00:00:00+00:00"  # the request's time: the age of the training rows


def _raw(table: pa.Table) -> pa.Table:
    """The ids as a hospital's system holds them (MRNs), before ingest pseudonymizes them."""
    return table.set_column(0, "pid", pa.array([f"MRN-{p}" for p in table.column("pid").to_pylist()]))


def _ingest(ws: Workspace, tmp_path: Path, name: str, table: pa.Table) -> None:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    actions = {c: "pseudonymize" if c == "pid" else "keep" for c in table.column_names}
    ingest(ws, TablePlan(name, ParquetSource(path), actions), actor="admin")


@dataclass
class Served:
    url: str
    ws: Workspace
    token: str


@pytest.fixture(params=["sqlite", REDIS])
def online_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def served(
    pseudonym_key: None, team: Workspace, tmp_path: Path, online_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    """vitals_risk:1 trained from the vitals and people views (pseudonymized ids), served; and readmission_flat:1
    trained on a flat table, served beside it."""
    _ingest(team, tmp_path, "events", _raw(events_table()))
    _ingest(team, tmp_path, "people", _raw(people_table()))
    labels = labels_frame(160).assign(pid=lambda f: "MRN-" + f["pid"])
    _ingest(team, tmp_path, "labels", pa.Table.from_pandas(labels, preserve_index=False))
    with FeatureStore(team, feature_set(), executor="local", online_store=online_url) as store:
        store.apply("alice")
        info, _ = store.save_training_set(
            "vitals_training", "labels", ["vitals", "people", "age"], timestamp="at", actor="alice"
        )
        store.materialize("admin", as_of=AS_OF)
    frame = pq.read_table(team.artifacts.local_path(info.version)).to_pandas()
    data = {"dataset": info.name, "version": info.version, "drop_missing_labels": False}
    views = dict(info.details["training_set"]["views"])
    config = TrainConfig(
        FEATURES,
        "y",
        LOGISTIC,
        split="stratified",
        group=None,
        test_size=0.3,
        seed=3,
        inputs=(info.ref,),
        data=data,
        feature_views=views,
    )
    versions.register(team, train(Tracker(team), frame, config, actor="alice").run_id, "vitals_risk", actor="alice")
    flat = TrainConfig(
        ["birth_year"],
        "y",
        LOGISTIC,
        split="stratified",
        group=None,
        test_size=0.3,
        seed=3,
        inputs=(info.ref,),
        data=data,
    )
    versions.register(team, train(Tracker(team), frame, flat, actor="alice").run_id, "flat", actor="alice")

    monkeypatch.setenv("MEDOPS_ONLINE_STORE", online_url)  # the server reads the store the workspace names
    ws = Workspace.open(team.settings.home)
    services = Services(ws)
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, token = services.identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    models = services.serving.load(["vitals_risk:1", "flat:1"])
    try:
        with serving_in_thread(create_app(services, models), start_timeout=5.0) as url:
            yield Served(url, ws, token)
    finally:
        for model in models.values():
            if model.lookup is not None:
                model.lookup.close()
        if online_url.startswith("redis"):
            _clear_redis(online_url, ws.settings.workspace_id)
        ws.close()


def _clear_redis(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"medops:{namespace}:*", count=1000):
        client.unlink(key)
    client.close()


def _predict(http: httpx.Client, model: str, body: object) -> httpx.Response:
    return http.post(f"/v1/models/{model}/predict", json=body)


def test_a_named_entity_is_scored_on_its_online_features(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pseudonymizer = Pseudonymizer(PSEUDONYM_KEY.encode())
    pseudonym, other, second = (pseudonymizer.one(raw, "pid") for raw in ("MRN-p001", "MRN-nobody", "MRN-p002"))
    stored = pq.read_table(served.ws.artifacts.local_path(get(served.ws.db, "people").version)).column("pid")
    assert pseudonym in stored.to_pylist()  # the server's pseudonym is the one ingest stored
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}, timeout=30) as http:
        detail = http.get("/v1/models/vitals_risk").json()["online_features"]
        assert detail["entity"] == ["pid"] and detail["computed"] == ["age"]
        rows = [
            {"pid": "MRN-p001", "event_timestamp": AT},
            {"pid": "MRN-nobody", "event_timestamp": AT},
            {"pid": "MRN-p002", "event_timestamp": AT, "hr": 71.0},
        ]
        answer = _predict(http, "vitals_risk", rows)
        assert answer.status_code == 200, answer.text
        known, unknown, given = answer.json()["predictions"]
        assert known["features"] == {"missing": [], "stale": ["hr"], "given": []}
        missing = ["a_count_60d", "age", "birth_year", "hr", "hr_mean_30d"]
        assert unknown["features"] == {"missing": missing, "stale": [], "given": []}
        assert given["features"] == {"missing": [], "stale": [], "given": ["hr"]}

        # the same probability as the features read by pseudonym and scored in Python
        with FeatureStore(served.ws, feature_set()) as store:
            online = store.get_online_features({"pid": [pseudonym]}, ["vitals", "people"])
        row = {f: online.columns[f][0] for f in FEATURES if f != "age"}
        row["age"] = 2025 - row["birth_year"]
        expected = load_model(served.ws, "vitals_risk:1").predict_proba(pd.DataFrame([row]))[0]
        assert row["hr"] is None and known["probability"] == pytest.approx(float(expected))

        # explicit values win: an explicit empty value of a required feature is a field-level 422
        bad = _predict(http, "vitals_risk", [{"pid": "MRN-p001", "event_timestamp": AT, "a_count_60d": None}])
        assert bad.status_code == 422
        assert [(f["row"], f["field"], f["code"]) for f in bad.json()["error"]["fields"]] == [
            (0, "a_count_60d", "missing_field")
        ]
        odd = _predict(http, "vitals_risk", {"pid": ["MRN-p001"], "note": "x", "event_timestamp": "soon"})
        assert sorted((f["field"], f["code"]) for f in odd.json()["error"]["fields"]) == [
            ("event_timestamp", "wrong_type"),
            ("note", "unknown_field"),
            ("pid", "wrong_type"),
        ]

        text = _predict(http, "vitals_risk", {"pid": "MRN-p001", "event_timestamp": AT, "birth_year": "nineteen"})
        assert text.status_code == 422 and "nineteen" not in text.text
        flat = _predict(http, "flat", {"pid": "MRN-p001"})
        assert flat.status_code == 422 and flat.json()["error"]["code"] == "entity_lookup_unsupported"

        schema = http.get("/openapi.json").json()["paths"]["/v1/models/vitals_risk/predict"]["post"]
        one = schema["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
        assert one["oneOf"][1]["required"] == ["pid"]
        ready = http.get("/readyz").json()
        assert ready["ready"] is True and ready["online_store"] is True
        texts = [answer.text, bad.text, odd.text, flat.text]
    assert not any("MRN-" in text for text in texts)
    assert "MRN-" not in caplog.text

    # the prediction log keeps each row as scored and the entity as its pseudonym, never the id sent
    logged: list[LoggedPrediction] = []
    for _ in range(400):  # bounded wait for the running server's spool (sealed each second) to drain
        logged = prediction_log.latest(served.ws, PredictionFilter(model="vitals_risk"), 100)
        if len(logged) >= 3:
            break
        time.sleep(0.05)
    assert sorted(p.entity or "" for p in logged) == sorted(f"pid={p}" for p in (pseudonym, other, second))
    assert all(set(p.inputs) == set(FEATURES) for p in logged)
    assert not any("MRN-" in json.dumps(p.to_json()) for p in logged)


def test_the_server_needs_the_key_the_ids_were_pseudonymized_with(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Services(served.ws)
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", secrets.token_urlsafe(48))
    with pytest.raises(ConfigError) as refused:
        services.serving.load(["vitals_risk:1"])  # a wrong key stops the server before it serves
    assert refused.value.code == "pseudonym_key_mismatch"
    monkeypatch.delenv("MEDOPS_PSEUDONYM_KEY")  # and no key file: features are still accepted, entities are not
    models = services.serving.load(["vitals_risk:1"])
    with (
        serving_in_thread(create_app(services, models), start_timeout=5.0) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {served.token}"}, timeout=30) as http,
    ):
        example = http.get("/v1/models/vitals_risk").json()["example"]
        assert _predict(http, "vitals_risk", example).status_code == 200
        refused_row = _predict(http, "vitals_risk", {"pid": "MRN-p001"})
        assert refused_row.status_code == 500 and "MRN-" not in refused_row.text
    for model in models.values():
        if model.lookup is not None:
            model.lookup.close()


def test_the_demo_model_scores_a_patient_named_by_the_hospital_id(demo_copy: Path) -> None:
    """The docs' example: the demo's features materialized at a discharge, the patient named by the source id."""
    from medops.services.projects.project import load_project

    ws = Workspace.open(demo_copy / "workspace")
    try:
        project = load_project(demo_copy / "project" / "medops.yaml")
        with FeatureStore(ws, project.features) as store:
            store.materialize("ming", as_of=datetime(2026, 1, 1, tzinfo=UTC))
        services = Services(ws)
        _, token = services.identity.create_token(Caller("ada"), "ehr-lookup", username="pat")
        models = services.serving.load(["readmission_30d"])
        body = {"patient_id": "P00000000", "event_timestamp": "2026-01-01T00:00:00Z"}
        with (
            serving_in_thread(create_app(services, models), start_timeout=5.0) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        ):
            answer = http.post("/v1/models/readmission_30d/predict", json=body)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["predictions"]
        # a stay two weeks before, with its labs, and medication fills since: every view has the patient's rows
        assert row["features"] == {"missing": [], "stale": [], "given": []}
        assert "P00000000" not in answer.text
        lookup = models["readmission_30d"].lookup
        assert lookup is not None
        lookup.close()
    finally:
        ws.close()
