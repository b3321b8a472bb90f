"""The feature store end to end, on both metadata backends and both online stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from medops.data.datasets import get
from medops.data.ingest import TablePlan, ingest
from medops.data.sources import ParquetSource
from medops.errors import InvalidInput, NotFound, PermissionDenied
from medops.features import Feature, FeatureStore, FeatureView, FeatureViewError, OnDemandFeature
from medops.features.store import view_node
from medops.store.lineage import walk
from medops.store.schema import FeatureViewVersion
from tests.factories import REDIS, T0, events_table, feature_set, labels_frame, put

DAY = timedelta(days=1)


pytestmark = pytest.mark.usefixtures("pseudonym_key")


def test_apply_records_versions_lineage_and_audit_once(store: FeatureStore) -> None:
    first = store.apply("alice", reason="first")
    assert [r.new for r in first] == [True, True]
    vitals = first[0].view
    assert vitals.rows == 180 and vitals.stats["entities"] == 30
    assert vitals.definition["owner"] == "alice"
    again = store.apply("alice")
    assert [r.new for r in again] == [False, False]
    assert again[0].view.version == vitals.version
    edges = walk(store.ws.db, view_node("vitals", vitals.version), "up", depth=1)
    assert [e.src for e in edges] == [get(store.ws.db, "events").node]
    with store.ws.db.read() as session:
        assert session.scalar(select(func.count()).select_from(FeatureViewVersion)) == 2


def test_a_changed_definition_or_source_is_a_new_version(store: FeatureStore, tmp_path: Path) -> None:
    before = store.apply("alice")[0].view.version
    changed = feature_set()
    changed.views["vitals"] = FeatureView(**{**vars(changed.views["vitals"]), "ttl": timedelta(days=26)})
    store.features = changed
    assert store.apply("alice", views=["vitals"])[0].view.version != before
    put(store.ws, tmp_path, "events", events_table(per=7))
    assert store.apply("alice", views=["vitals"])[0].new


def test_training_set_is_point_in_time_and_stored_with_lineage(store: FeatureStore, tmp_path: Path) -> None:
    store.apply("alice")
    labels = labels_frame()
    out = store.get_training_set(labels, ["vitals", "people", "age"], timestamp="at")
    assert len(out) == len(labels) and list(out["y"]) == list(labels["y"])
    assert out["hr_plus_one"].dropna().sub(out["hr"].dropna()).eq(1).all()
    assert out.loc[out["pid"] == "p031", "hr"].isna().all()
    assert (out.loc[out["pid"] == "p031", "a_count_60d"] == 0).all()
    expected_age = [a.year - b if pd.notna(b) else None for a, b in zip(labels["at"], out["birth_year"], strict=True)]
    assert [None if pd.isna(x) else x for x in out["age"]] == expected_age
    put(store.ws, tmp_path, "labels", pa.Table.from_pandas(labels, preserve_index=False))
    info, new = store.save_training_set(
        "train", "labels", ["vitals", "age", "people:birth_year"], timestamp="at", actor="admin"
    )
    assert new and info.kind == "training_set" and info.rows == len(labels)
    again, new_again = store.save_training_set(
        "train", "labels", ["vitals", "age", "people:birth_year"], timestamp="at", actor="admin"
    )
    assert again.version == info.version and not new_again
    sources = {e.src.split("@")[0] for e in walk(store.ws.db, info.node, "up", depth=1)}
    assert sources == {"dataset:labels", "featureview:vitals", "featureview:people"}


def test_bad_requests_are_clear(store: FeatureStore) -> None:
    store.apply("alice")
    labels = labels_frame()
    with pytest.raises(InvalidInput, match="no timestamp column 'when'"):
        store.get_training_set(labels, ["vitals"], timestamp="when")
    with pytest.raises(InvalidInput, match="no column 'pid', the entity of feature view vitals"):
        store.get_training_set(labels.rename(columns={"pid": "patient"}), ["vitals"], timestamp="at")
    with pytest.raises(InvalidInput, match="empty in row 2"):
        store.get_training_set(labels.assign(at=[T0, None, *labels["at"][2:]]), ["vitals"], timestamp="at")
    with pytest.raises(FeatureViewError, match="view vitals: no feature 'pulse'"):
        store.get_training_set(labels, ["vitals:pulse"], timestamp="at")
    with pytest.raises(FeatureViewError, match="no feature view 'vital'"):
        store.get_training_set(labels, ["vital"], timestamp="at")
    with pytest.raises(FeatureViewError, match="duplicate feature name 'hr'"):
        store.get_training_set(labels, ["vitals", "vitals:hr"], timestamp="at")
    with pytest.raises(FeatureViewError, match="on_demand.age: input 'birth_year'"):
        store.get_training_set(labels, ["age"], timestamp="at")


def test_a_view_not_applied_for_its_current_source_is_refused(store: FeatureStore) -> None:
    with pytest.raises(NotFound, match="feature view vitals is not applied"):
        store.get_training_set(labels_frame(), ["vitals"], timestamp="at")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "nope"}, "view vitals, source: no dataset 'nope'"),
        ({"timestamp": "when"}, "view vitals, timestamp: source events has no column 'when'"),
        ({"entity": "patient"}, "view vitals, entity: source events has no column 'patient'"),
        ({"timestamp": "hr"}, "view vitals, timestamp: column 'hr' is double, not a timestamp"),
        ({"features": (Feature("pulse"),)}, "view vitals, features.pulse: source events has no column 'pulse'"),
        ({"features": (Feature("x", expr="hr * (2"),)}, "view vitals, features.x: syntax error"),
        (
            {"features": (Feature("x", expr="pulse * 2"),)},
            'view vitals, features.x: Referenced column "pulse" not found',
        ),
        (
            {"features": (Feature("x", agg="count", window=DAY, filter="code = "),)},
            "view vitals, features.x.filter:",
        ),
        ({"filter": "nonsense("}, "view vitals, filter:"),
    ],
)
def test_bad_views_name_the_view_and_field_and_apply_nothing(
    store: FeatureStore, change: dict[str, Any], message: str
) -> None:
    broken = feature_set()
    broken.views["vitals"] = FeatureView(**{**vars(broken.views["vitals"]), **change})
    store.features = broken
    with pytest.raises(FeatureViewError) as info:
        store.apply("alice")
    assert message in str(info.value)
    with store.ws.db.read() as session:  # people, checked fine, was not applied either
        assert session.scalar(select(func.count()).select_from(FeatureViewVersion)) == 0


def test_a_failing_python_feature_applies_nothing_and_leaves_no_files(store: FeatureStore) -> None:
    broken = feature_set()
    broken.views["people"] = FeatureView(
        name="people", entity="pid", source="people", features=(Feature("boom", fn=lambda f: 1 / 0),)
    )
    store.features = broken
    before = set(store.ws.artifacts.digests())
    with pytest.raises(FeatureViewError, match="features.boom: the Python function failed: ZeroDivisionError"):
        store.apply("alice")
    assert set(store.ws.artifacts.digests()) == before
    tmp = Path(store.ws.artifacts.root) / ".tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def test_duplicate_feature_names_in_one_view_are_refused() -> None:
    with pytest.raises(FeatureViewError, match="view v, features.x: duplicate feature name"):
        FeatureView(name="v", entity="e", source="s", timestamp="t", features=(Feature("x"), Feature("x", expr="1")))


def test_roles(store: FeatureStore) -> None:
    with pytest.raises(PermissionDenied):
        store.apply("carol")  # clinical reviewer
    store.apply("alice")
    with pytest.raises(PermissionDenied):
        store.materialize("alice")  # data scientists don't publish to serving
    assert store.materialize("admin")["vitals"] == 30


@pytest.fixture(params=["sqlite", REDIS])
def online_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite"
    url: str = request.getfixturevalue("redis_url")
    return url


def _clear_redis(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"medops:{namespace}:*", count=1000):
        client.unlink(key)
    client.close()


def test_online_equals_offline(store: FeatureStore, online_url: str) -> None:
    store.online_url = online_url
    try:
        store.apply("alice")
        as_of = T0 + 40 * DAY
        assert store.materialize("admin", as_of=as_of) == {"vitals": 30, "people": 30}
        ids = [f"p{i:03d}" for i in range(0, 30, 3)]
        offline = store.get_training_set(
            pd.DataFrame({"pid": ids, "event_timestamp": [as_of] * len(ids)}), ["vitals", "people"]
        )
        online = store.get_online_features({"pid": ids}, ["vitals", "people"], now=as_of)
        for name in ["hr", "hr_mean_30d", "a_count_60d", "hr_plus_one", "birth_year"]:
            got = [None if pd.isna(x) else float(x) for x in online.frame[name]]
            want = [None if pd.isna(x) else float(x) for x in offline[name]]
            assert got == pytest.approx(want, nan_ok=True), name
        report = store.check("carol", sample=30)
        assert report.ok and report.checked["vitals"] == 30 and report.checked["on_demand"] > 0
    finally:
        if online_url.startswith("redis"):
            _clear_redis(online_url, store.ws.settings.workspace_id)


def test_online_staleness_and_missing_entities(store: FeatureStore) -> None:
    store.apply("alice")
    as_of = T0 + 40 * DAY
    store.materialize("admin", as_of=as_of)
    fresh = store.get_online_features({"pid": ["p001", "nobody"]}, ["vitals", "people", "age"], now=as_of)
    assert fresh.found["vitals"] == [True, False]
    assert fresh.frame["hr"].iloc[0] is not None and not fresh.stale["hr"][0]
    assert fresh.frame["a_count_60d"].iloc[1] == 0  # no rows: counts none, as offline
    assert fresh.frame["age"].iloc[0] == as_of.year - 1951
    later = store.get_online_features({"pid": ["p001"]}, ["vitals"], now=as_of + 60 * DAY)
    assert later.stale["hr"] == [True] and later.frame["hr"].iloc[0] is None
    assert later.event_times["vitals"][0] is not None and later.event_times["vitals"][0] <= as_of
    assert later.stale["hr_mean_30d"] == [False]  # aggregates are values as of materialization


def test_check_finds_an_online_value_that_differs(store: FeatureStore) -> None:
    store.apply("alice")
    store.materialize("admin", as_of=T0 + 40 * DAY)
    info = store.online.info("vitals")
    assert info is not None
    rows = store.online.read("vitals", ["p000"])
    store.online.write(
        "vitals",
        str(info["version"]),
        T0 + 40 * DAY,
        ["p000"],
        [rows[0].event_time],
        [{**rows[0].values, "hr": -1.0}],
    )
    report = store.check("carol", views=["vitals"], sample=30)
    assert not report.ok
    assert any(d.entity == "p000" and d.feature == "hr" for d in report.differences)


def test_on_demand_python_and_sql_agree_batch_and_row_by_row(store: FeatureStore) -> None:
    fs = feature_set()
    fs.add(
        OnDemandFeature(
            name="age_py", fn=lambda f: f["event_timestamp"].dt.year - f["birth_year"], inputs=("birth_year",)
        )
    )
    store.features = fs
    store.apply("alice")
    out = store.get_training_set(labels_frame(), ["people", "age", "age_py"], timestamp="at")
    assert out["age"].astype("float").equals(out["age_py"].astype("float"))
    store.materialize("admin", as_of=T0)
    assert store.check("carol").ok


@pytest.mark.slow
def test_dask_and_local_give_identical_results(store: FeatureStore) -> None:
    local = store.apply("alice")
    labels = labels_frame(200)
    want = store.get_training_set(labels, ["vitals", "people", "age"], timestamp="at")
    with FeatureStore(store.ws, store.features, executor="dask-local") as dask:
        assert dask.executor.partitions > 1
        table_digests = [r.view.table_digest for r in local]
        from medops.features.partitions import table_partitioned

        for r, digest in zip(local, table_digests, strict=True):
            view = store.features.view(r.view.name)
            source = store.ws.artifacts.local_path(get(store.ws.db, view.source).version)
            assert table_partitioned(dask.executor, view, source).equals(pq.read_table(store._table(r.view)))
            assert digest == r.view.table_digest
        got = dask.get_training_set(labels, ["vitals", "people", "age"], timestamp="at")
    pd.testing.assert_frame_equal(got, want)


def test_materialize_writes_nothing_when_a_view_is_not_applied(store: FeatureStore) -> None:
    store.apply("alice", views=["vitals"])
    with pytest.raises(NotFound, match="feature view people is not applied"):
        store.materialize("admin")
    assert store.online.views() == []


def test_a_label_whose_patient_lost_source_rows_to_quarantine_leaves_with_them(
    store: FeatureStore, tmp_path: Path
) -> None:
    """Without this, p005's labels stayed with every vitals feature missing, imputed, and the gate said passed."""
    from medops.data.contracts import ColumnSpec, ContractSpec

    events = events_table()
    hr = events.column("hr").to_pylist()
    pids = events.column("pid").to_pylist()
    hr = [-1.0 if pid == "p005" and i % 2 else v for i, (pid, v) in enumerate(zip(pids, hr, strict=True))]
    bad = events.set_column(events.schema.get_field_index("hr"), "hr", pa.array(hr))
    path = tmp_path / "events_bad.parquet"
    pq.write_table(bad, path)
    contract = ContractSpec(
        table="events",
        on_failure="quarantine",
        columns={
            "pid": ColumnSpec(nullable=False),
            "t": ColumnSpec(type="datetime"),
            "known": ColumnSpec(type="datetime"),
            "hr": ColumnSpec(type="float", range=(20, 250)),
            "code": ColumnSpec(),
        },
    )
    actions = {c: "keep" for c in bad.column_names}
    result = ingest(store.ws, TablePlan("events", ParquetSource(path), actions, contract), actor="admin")
    assert result.quarantine is not None and result.quarantine.rows == 3
    store.apply("alice")
    labels = labels_frame()
    put(store.ws, tmp_path, "labels", pa.Table.from_pandas(labels, preserve_index=False))
    info, _ = store.save_training_set("train", "labels", ["vitals", "people:birth_year"], timestamp="at", actor="admin")
    kept = pq.read_table(store.ws.artifacts.local_path(info.version)).to_pandas()
    assert "p005" not in set(kept["pid"]) and len(kept) == len(labels) - int((labels["pid"] == "p005").sum())
    lost = info.details["training_set"]["quarantine"]
    assert lost["label_rows_dropped"] == int((labels["pid"] == "p005").sum()) and lost["policy"] == "drop"
    assert lost["sources"]["events"]["entities"] == 1 and lost["sources"]["events"]["quarantined_rows"] == 3
    assert lost["share_lost"] == pytest.approx(lost["label_rows_dropped"] / len(labels))
    with pytest.raises(InvalidInput, match="label rows belong to entities with quarantined source rows"):
        store.save_training_set("train", "labels", ["vitals"], timestamp="at", quarantined="refuse", actor="admin")
