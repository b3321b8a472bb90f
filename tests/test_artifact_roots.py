"""The lifecycle with the artifact root on fsspec's in-memory filesystem and on a file:// URL.

Ingest (with a contract that quarantines), features (apply, a training
set), training (and reproducing it from the stored recipe), evaluation (its stored predictions
read back) and the registry (export, load, predict) all run on the root; every reader that
needs a file gets a verified local copy.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.data.contracts import ContractSpec
from medops.data.datasets import get
from medops.data.ingest import TablePlan, ingest
from medops.data.sources import ParquetSource
from medops.evaluation.records import predictions, record
from medops.features import FeatureStore
from medops.registry.predictor import load_model
from medops.registry.transfer import export
from medops.registry.versions import register
from medops.store.artifacts import TMP_DIR
from medops.training import Tracker
from medops.training.reproduce import reproduce
from medops.training.trainers import ModelSpec
from medops.workspace import Workspace
from tests.factories import (
    COHORT_FEATURES,
    PSEUDONYM_KEY,
    cohort,
    evaluate_run,
    events_table,
    feature_set,
    labels_frame,
    people_table,
    put,
    train_run,
)

HEART_RATE = ContractSpec.model_validate(
    {
        "table": "events",
        "columns": {"pid": {"type": "string", "nullable": False}, "hr": {"type": "float"}},
        "rules": [{"name": "heart rate 20-300", "expr": "hr >= 20 and hr <= 300"}],
    }
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", PSEUDONYM_KEY)


def _ingest_and_features(ws: Workspace, tmp_path: Path) -> None:
    events = events_table()
    hr = events.column("hr").to_pylist()
    hr[0] = 999.0  # implausible: quarantined
    events = events.set_column(events.schema.get_field_index("hr"), "hr", pa.array(hr))
    pq.write_table(events, tmp_path / "events.parquet")
    actions = {c: "keep" for c in events.column_names}
    plan = TablePlan("events", ParquetSource(tmp_path / "events.parquet"), actions, contract=HEART_RATE)
    first = ingest(ws, plan, actor="admin")
    assert first.quarantine is not None and first.quarantine.rows == 1
    quarantined = pq.read_table(ws.artifacts.local_path(first.quarantine.version))
    assert quarantined.column("hr").to_pylist() == [999.0]
    again = ingest(ws, plan, actor="admin", chunk_rows=37)
    assert not again.new and again.dataset.version == first.dataset.version  # the same bytes, the same version

    put(ws, tmp_path, "people", people_table())
    put(ws, tmp_path, "labels", pa.Table.from_pandas(labels_frame(), preserve_index=False))
    with FeatureStore(ws, feature_set(), executor="local", online_store="sqlite") as store:
        applied = store.apply("alice")
        assert [r.view.name for r in applied] == ["vitals", "people"] and applied[0].view.rows == 179
        info, new = store.save_training_set(
            "training", "labels", ["vitals", "people", "age"], timestamp="at", actor="alice"
        )
        assert new
        built = pq.read_table(ws.artifacts.local_path(info.version))
        assert {"hr_mean_30d", "birth_year", "age"} <= set(built.column_names)
        assert built.num_rows == 38 and "p000" not in built.column("pid").to_pylist()  # its row was quarantined
        assert not store.save_training_set(
            "training", "labels", ["vitals", "people", "age"], timestamp="at", actor="alice"
        )[1]


def _train_evaluate_register(ws: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(ws)
    model = ModelSpec("lightgbm", {"n_estimators": 30, "num_leaves": 7})
    run = train_run(tracker, tmp_path, "cohort", cohort(900, biased=False), model, COHORT_FEATURES)
    assert reproduce(tracker, run, actor="alice").same_model  # the recipe's dataset read back from the root

    doc = evaluate_run(tracker, run, bootstrap={"resamples": 100, "seed": 1})
    info = record(ws, doc, "<html></html>", "# card", "<html></html>", actor="victor")
    assert predictions(ws, info.id, actor="victor").num_rows == 270  # the test rows: 30% of 900

    version = register(ws, run, "readmission", actor="alice")
    bundle = tmp_path / "model.medops"
    export(ws, version.ref, bundle, actor="alice")
    predictor = load_model(ws, bundle)
    rows = pq.read_table(ws.artifacts.local_path(get(ws.db, "cohort").version)).to_pandas()
    scored = predictor.predict_proba(rows[predictor.features].head(3))
    assert len(scored) == 3 and all(0.0 <= p <= 1.0 for p in scored)


def test_the_lifecycle_runs_with_the_artifact_root_on_fsspec(
    team_on_root: Workspace, artifact_root: str, tmp_path: Path
) -> None:
    ws = team_on_root
    assert ws.settings.artifact_root == artifact_root
    _ingest_and_features(ws, tmp_path)
    _train_evaluate_register(ws, tmp_path)
    assert ws.verify_audit().ok
    stored = list(ws.artifacts.digests())
    assert stored and ws.artifacts.verify_all().ok
    cache = ws.settings.home / "artifact-cache"
    if artifact_root.startswith("file://"):
        assert ws.artifacts.local and (tmp_path / "url-artifacts" / "sha256").is_dir()
        assert not cache.exists()  # local files are read in place
    else:
        assert not ws.artifacts.local and ws.artifacts.cache == cache
        cached = {p.name for p in (cache / "sha256").rglob("*") if p.is_file()}
        assert cached and cached <= set(stored)  # copies of stored artifacts only, by their digest
        assert not any((cache / TMP_DIR).iterdir())  # staged files became cached copies or were removed
