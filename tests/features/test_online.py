"""The online store contract, on SQLite, on Redis (each Redis test in its own namespace) and on a
store registered from outside medops: the "add an online store" walk-through of docs/architecture.md."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from medops.config import Settings, validate
from medops.errors import ConfigError, InvalidInput, NotFound
from medops.features.online import (
    OnlineRow,
    OnlineStore,
    online_store_kind,
    open_online_store,
    register_online_store,
    unregister_online_store,
)
from medops.features.online import base as online_base
from tests.factories import REDIS, loose_umask, mode

T0 = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)
AS_OF = datetime(2026, 11, 25, tzinfo=UTC)
AS_OF_ISO = "2026-11-25T00:00:00.000000Z"

StoreFactory = Callable[[str], OnlineStore]


# ---------------------------------------------------------------------------- a backend from outside medops

# info, features in order, entity -> (event time, values as JSON)
Table = tuple[dict[str, object], tuple[str, ...], dict[str, tuple[str | None, str]]]


class DictOnlineStore:
    """An online store in a dict: what the walk-through builds. Every store opened on one URL
    shares the URL's tables; a write builds the whole new table, then swaps it in one assignment."""

    def __init__(self, tables: dict[tuple[str, str], Table], namespace: str) -> None:
        self.tables = tables
        self.namespace = namespace

    def write(
        self,
        view: str,
        version: str,
        as_of: datetime,
        entity_ids: Sequence[str],
        event_times: Sequence[datetime | None],
        rows: Sequence[dict[str, object]],
        progress: online_base.Progress | None = None,
    ) -> int:
        prep = online_base.prepare_write(view, version, as_of, entity_ids, event_times, rows)
        enc = online_base.Encoder(view)
        table: dict[str, tuple[str | None, str]] = {}
        for start in range(0, prep.count, online_base.BATCH):
            stop = min(start + online_base.BATCH, prep.count)
            for i in range(start, stop):
                table[entity_ids[i]] = (enc.event_time(event_times[i]), enc.values(rows[i]))
            if progress is not None:
                progress(stop)
        info = {"view": view, "version": version, "as_of": prep.as_of, "rows": prep.count}
        features = tuple(enc.features)
        self.tables[(self.namespace, view)] = ({**info, "features": list(features)}, features, table)
        return prep.count

    def read(self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> list[OnlineRow]:
        online_base.check_read_args(view, entity_ids, features)
        current = self.tables.get((self.namespace, view))  # one lookup: one consistent table
        if current is None:
            raise online_base.not_found(view)
        _, known, table = current
        selected = online_base.select_features(view, known, frozenset(known), features)
        out = []
        for entity in entity_ids:
            hit = table.get(entity)
            if hit is None:
                out.append(OnlineRow(dict.fromkeys(selected), None, False))
            else:
                values = online_base.loads(hit[1])
                out.append(OnlineRow({n: values.get(n) for n in selected}, online_base.parse_time(hit[0]), True))
        return out

    def info(self, view: str) -> dict[str, object] | None:
        current = self.tables.get((self.namespace, view))
        return None if current is None else dict(current[0])

    def views(self) -> list[str]:
        return sorted(view for namespace, view in self.tables if namespace == self.namespace)

    def close(self) -> None:
        pass


def _open_empty(url: str, *, home: Path, namespace: str) -> DictOnlineStore:
    return DictOnlineStore({}, namespace)


@pytest.fixture
def dict_backend() -> Iterator[dict[str, dict[tuple[str, str], Table]]]:
    """The dict store registered as ``dict://NAME`` for one test: the tables of every URL opened."""
    tables: dict[str, dict[tuple[str, str], Table]] = {}

    def open_dict(url: str, *, home: Path, namespace: str) -> DictOnlineStore:
        return DictOnlineStore(tables.setdefault(url, {}), namespace)

    register_online_store("dict", open_dict, schemes=("dict",), examples=("dict://NAME",))
    yield tables
    unregister_online_store("dict")


@pytest.fixture(params=["sqlite", REDIS, "dict"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on one backend by namespace; Redis keys of every namespace are deleted after."""
    opened: list[tuple[OnlineStore, str]] = []
    url = f"sqlite:///{tmp_path / 'shared' / 'online.db'}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    if request.param == "dict":
        request.getfixturevalue("dict_backend")
        url = "dict://contract"

    def make(namespace: str) -> OnlineStore:
        store = open_online_store(url, home=tmp_path, namespace=namespace)
        opened.append((store, namespace))
        return store

    yield make
    for store, namespace in opened:
        if request.param == "redis":
            client = store.client  # type: ignore[attr-defined]
            keys = list(client.scan_iter(match=f"medops:{namespace}:*", count=10_000))
            for start in range(0, len(keys), 10_000):
                client.unlink(*keys[start : start + 10_000])
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> OnlineStore:
    return make_store(f"test-{uuid.uuid4().hex}")


def _write(store: OnlineStore, view: str, n: int, *, version: str = "v1", offset: int = 0) -> int:
    ids = [f"e{i}" for i in range(n)]
    times = [T0 + timedelta(minutes=i) for i in range(n)]
    rows: list[dict[str, object]] = [{"a": i + offset, "b": f"s{i}", "c": i / 2} for i in range(n)]
    return store.write(view, version, AS_OF, ids, times, rows)


def test_write_then_read_keeps_values_times_and_order(store: OnlineStore) -> None:
    assert _write(store, "vitals", 5) == 5
    got = store.read("vitals", ["e3", "nobody", "e0"])
    assert [r.found for r in got] == [True, False, True]
    assert got[0].values == {"a": 3, "b": "s3", "c": 1.5}
    assert got[0].event_time == T0 + timedelta(minutes=3)
    assert got[0].event_time is not None and got[0].event_time.utcoffset() == timedelta(0)
    assert got[1].values == {"a": None, "b": None, "c": None} and got[1].event_time is None
    assert got[2].values == {"a": 0, "b": "s0", "c": 0.0}
    assert store.read("vitals", []) == []


def test_many_ids_and_duplicates_in_one_read(store: OnlineStore) -> None:
    _write(store, "vitals", 1_200)
    ids = [f"e{i}" for i in range(1_199, -1, -1)] + ["e5", "missing"]
    got = store.read("vitals", ids)
    assert [r.values["a"] for r in got] == [*range(1_199, -1, -1), 5, None]
    assert got[-1].found is False


def test_feature_subset_in_the_order_asked(store: OnlineStore) -> None:
    _write(store, "vitals", 3)
    (row,) = store.read("vitals", ["e2"], ["c", "a"])
    assert list(row.values) == ["c", "a"] and row.values == {"c": 1.0, "a": 2}
    (missing,) = store.read("vitals", ["zz"], ["b"])
    assert missing.values == {"b": None} and not missing.found


def test_unknown_view_is_not_found_with_a_hint(store: OnlineStore) -> None:
    with pytest.raises(NotFound, match="'nope'") as exc:
        store.read("nope", ["e1"])
    assert exc.value.code == "online_not_materialized" and exc.value.fields == {"view": "nope"}
    assert store.info("nope") is None


def test_unknown_feature_names_view_and_feature(store: OnlineStore) -> None:
    _write(store, "vitals", 2)
    with pytest.raises(InvalidInput, match="'vitals'.*'heart_rate'"):
        store.read("vitals", ["e1"], ["a", "heart_rate"])


def test_rewrite_replaces_the_whole_table(store: OnlineStore) -> None:
    _write(store, "vitals", 10)
    store.write("vitals", "v2", AS_OF, ["e1", "new"], [T0, None], [{"a": 100}, {"a": 200}])
    got = store.read("vitals", ["e1", "new", "e5"])
    assert [r.found for r in got] == [True, True, False]
    assert got[0].values == {"a": 100} and got[1].event_time is None
    info = store.info("vitals")
    assert info is not None and info["version"] == "v2" and info["rows"] == 2 and info["features"] == ["a"]


def test_failed_write_leaves_the_previous_table(store: OnlineStore) -> None:
    _write(store, "vitals", 50, version="v1")
    n = online_base.BATCH + 2_000
    rows: list[dict[str, object]] = [{"a": i} for i in range(n)]
    rows[online_base.BATCH + 1_000] = {"a": object()}  # in the second batch: the first is already stored
    with pytest.raises(InvalidInput, match="type object"):
        store.write("vitals", "v2", AS_OF, [f"e{i}" for i in range(n)], [T0] * n, rows)
    info = store.info("vitals")
    assert info is not None and info["version"] == "v1" and info["rows"] == 50
    got = store.read("vitals", ["e0", "e49", "e50", f"e{n - 1}"])
    assert [r.found for r in got] == [True, True, False, False]
    assert got[1].values == {"a": 49, "b": "s49", "c": 24.5}
    if hasattr(store, "client"):  # Redis: the partial generation was removed
        keys = list(store.client.scan_iter(match=f"medops:{store.namespace}:online:vitals:g*", count=10_000))
        assert len(keys) == 50


def test_refused_input_changes_nothing(store: OnlineStore) -> None:
    _write(store, "vitals", 3)
    with pytest.raises(InvalidInput, match="repeats 1"):
        store.write("vitals", "v2", AS_OF, ["x", "x"], [T0, T0], [{}, {}])
    with pytest.raises(InvalidInput, match="no timezone"):
        store.write("vitals", "v2", AS_OF, ["x"], [datetime(2026, 1, 1)], [{"a": 1}])
    with pytest.raises(InvalidInput, match="2 entity ids, 1 event times"):
        store.write("vitals", "v2", AS_OF, ["x", "y"], [T0], [{}, {}])
    with pytest.raises(InvalidInput, match="not a valid name"):
        store.write("bad:name", "v2", AS_OF, [], [], [])
    with pytest.raises(InvalidInput, match="not a string"):
        store.write("vitals", "v2", AS_OF, [1], [T0], [{}])  # type: ignore[list-item]
    info = store.info("vitals")
    assert info is not None and info["version"] == "v1"


def test_namespaces_do_not_see_each_other(make_store: StoreFactory) -> None:
    one, two = make_store(f"ns1-{uuid.uuid4().hex}"), make_store(f"ns2-{uuid.uuid4().hex}")
    _write(one, "vitals", 3)
    with pytest.raises(NotFound):
        two.read("vitals", ["e1"])
    assert two.views() == [] and two.info("vitals") is None
    _write(two, "vitals", 1, offset=1_000)
    assert one.read("vitals", ["e0"])[0].values["a"] == 0
    assert two.read("vitals", ["e0"])[0].values["a"] == 1_000
    assert one.read("vitals", ["e2"])[0].found and not two.read("vitals", ["e2"])[0].found


def test_info_and_views(store: OnlineStore) -> None:
    assert store.views() == []
    _write(store, "vitals", 4)
    store.write("labs", "x", AS_OF, [], [], [])
    assert store.views() == ["labs", "vitals"]
    assert store.info("vitals") == {
        "view": "vitals",
        "version": "v1",
        "as_of": AS_OF_ISO,
        "rows": 4,
        "features": ["a", "b", "c"],
    }
    assert store.info("labs") == {"view": "labs", "version": "x", "as_of": AS_OF_ISO, "rows": 0, "features": []}


def test_values_are_made_json(store: OnlineStore) -> None:
    row: dict[str, object] = {
        "nan": float("nan"),
        "inf": -math.inf,
        "np_nan": np.float64("nan"),
        "np_int": np.int64(7),
        "np_bool": np.bool_(True),
        "dec": Decimal("1.25"),
        "day": date(2026, 1, 2),
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "flag": False,
        "none": None,
    }
    store.write("mixed", "v1", AS_OF, ["p"], [None], [row])
    (got,) = store.read("mixed", ["p"])
    assert got.values == {
        "nan": None,
        "inf": None,
        "np_nan": None,
        "np_int": 7,
        "np_bool": True,
        "dec": 1.25,
        "day": "2026-01-02",
        "when": "2026-01-02T03:04:05.000000Z",
        "flag": False,
        "none": None,
    }
    assert got.found and got.event_time is None


def test_ten_thousand_rows_with_progress(store: OnlineStore) -> None:
    n = 10_000
    seen: list[int] = []
    ids = [f"patient-{i:05d}" for i in range(n)]
    rows: list[dict[str, object]] = [{f"f{j}": i + j / 10 for j in range(20)} for i in range(n)]
    assert store.write("wide", "v1", AS_OF, ids, [T0] * n, rows, progress=seen.append) == n
    assert seen[-1] == n and seen == sorted(seen)
    got = store.read("wide", ids[::997])
    assert all(r.found for r in got) and got[3].values["f19"] == 3 * 997 + 1.9


def test_bad_urls_and_names_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not known"):
        open_online_store("postgres://u:secret@h/db", home=tmp_path, namespace="ws")
    with pytest.raises(ConfigError) as exc:
        open_online_store("mysql://u:secret@h/db", home=tmp_path, namespace="ws")
    assert "secret" not in str(exc.value)
    with pytest.raises(ConfigError, match="namespace"):
        open_online_store("sqlite", home=tmp_path, namespace="a:b")


def test_default_and_relative_sqlite_paths(tmp_path: Path) -> None:
    for url, expected in [("sqlite", tmp_path / "online.db"), ("sqlite:///sub/o.db", tmp_path / "sub" / "o.db")]:
        store = open_online_store(url, home=tmp_path, namespace="ws")
        _write(store, "vitals", 1)
        store.close()
        assert expected.is_file()


def test_the_sqlite_online_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Feature values per patient: the file (and its WAL files, which SQLite makes with its mode) is 0600."""
    with loose_umask(0o022):
        store = open_online_store("sqlite", home=tmp_path, namespace="ws")
        store.views()  # the reader's connection keeps the WAL files after the write's closes
        _write(store, "vitals", 1)
        files = [tmp_path / name for name in ("online.db", "online.db-wal", "online.db-shm")]
        assert {mode(path) for path in files} == {0o600}
        store.close()


def test_unreachable_redis_is_a_store_error_without_password(tmp_path: Path) -> None:
    from medops.errors import StoreError

    store = open_online_store("redis://:hunter2@127.0.0.1:1/0", home=tmp_path, namespace="ws")
    with pytest.raises(StoreError, match=r"Redis at 127\.0\.0\.1:1 is unreachable") as exc:
        store.read("vitals", ["e1"])
    assert "hunter2" not in str(exc.value) and "hunter2" not in (exc.value.hint or "")
    store.close()


def test_readers_never_see_a_mix_during_rewrites(store: OnlineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(online_base, "BATCH", 50)  # many batches per write
    n = 600
    ids = [f"e{i}" for i in range(n)]
    probe = ids[::37]

    def rewrite(value: int) -> None:
        store.write("flip", str(value), AS_OF, ids, [T0] * n, [{"x": value} for _ in range(n)])

    rewrite(0)
    seen: set[tuple[object, ...]] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                got = store.read("flip", probe)
                seen.add(tuple(r.values["x"] if r.found else "missing" for r in got))
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for value in range(1, 5):
            rewrite(value)
    finally:
        done.set()
        thread.join()
    assert not errors
    assert all(len(set(snapshot)) == 1 and "missing" not in snapshot for snapshot in seen), seen


def test_a_registered_backend_is_known_to_settings_hints_and_audit(
    tmp_path: Path, dict_backend: dict[str, dict[tuple[str, str], Table]]
) -> None:
    settings = Settings(home=tmp_path, workspace_id="ws", metadata_url="sqlite:///x.db", artifact_root="a")
    validate(replace(settings, online_store="dict://team"))
    validate(replace(settings, online_store=f"sqlite:///{tmp_path / 'online.db'}"))  # what the store opens
    assert online_store_kind("dict://team") == "dict" and online_store_kind("rediss://h:1/0") == "redis"
    with pytest.raises(ConfigError, match="online_store 'memcached://h' is not known") as exc:
        validate(replace(settings, online_store="memcached://h"))
    assert exc.value.hint == "use sqlite, sqlite:////path/online.db, redis://host:6379/0 or dict://NAME"
    with pytest.raises(ConfigError, match="'dict' is registered already"):
        register_online_store("dict", lambda url, *, home, namespace: DictOnlineStore({}, namespace), schemes=("x",))
    with pytest.raises(ConfigError, match="would answer to 'redis'"):
        register_online_store(
            "other", lambda url, *, home, namespace: DictOnlineStore({}, namespace), schemes=("redis",)
        )
    store = open_online_store("dict://team", home=tmp_path, namespace="ws")
    _write(store, "vitals", 2)
    assert dict_backend["dict://team"][("ws", "vitals")][0]["rows"] == 2


def test_an_unregistered_backend_is_refused_again(tmp_path: Path) -> None:
    register_online_store("dict", lambda url, *, home, namespace: DictOnlineStore({}, namespace), schemes=("dict",))
    unregister_online_store("dict")
    settings = Settings(home=tmp_path, workspace_id="ws", metadata_url="sqlite:///x.db", artifact_root="a")
    with pytest.raises(ConfigError, match="'dict://team' is not known"):
        validate(replace(settings, online_store="dict://team"))
    validate(replace(settings, online_store=f"sqlite:///{tmp_path / 'online.db'}"))  # what the store opens
    with pytest.raises(ConfigError, match="not registered"):
        unregister_online_store("dict")
