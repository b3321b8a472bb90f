"""The feature store on the workspace's DuckDB databases: every call and every store reuses them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from medops.data.duck_connections import duck
from medops.features import FeatureStore
from tests.factories import labels_frame

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def test_every_call_of_every_store_on_a_workspace_uses_its_two_databases(store: FeatureStore) -> None:
    store.apply("alice")
    store.training_table(labels_frame(), ["vitals", "people", "age"], timestamp="at")
    with FeatureStore(store.ws, store.features, executor="local", online_store="sqlite") as other:
        other.materialize("admin")
        assert other.check("admin").ok
        assert other.duck is store.duck
    assert store.duck.opened == 2  # the file reader and the sandbox, once each


def test_the_databases_close_with_the_workspace(store: FeatureStore) -> None:
    connections = store.duck
    with connections.reader() as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    store.ws.close()
    assert duck(store.ws) is not connections  # a workspace used again opens new ones


def test_threads_share_the_databases_with_a_cursor_each(store: FeatureStore) -> None:
    store.apply("alice")
    labels = labels_frame()
    expected = store.training_table(labels, ["vitals", "people", "age"], timestamp="at")
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: store.training_table(labels, ["vitals", "people", "age"], timestamp="at"), range(8))
        )
    assert all(r.equals(expected) for r in results)
    assert store.duck.opened == 2
