"""A feature table is hashed once per file and process, and hashed again (and refused) once changed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.errors import IntegrityError
from medops.features import FeatureStore, verified
from medops.features.verified import verified_path
from medops.store.artifacts import ArtifactStore
from tests.factories import labels_frame

pytestmark = pytest.mark.usefixtures("pseudonym_key")


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Files written a moment ago count as settled, and nothing is remembered across tests."""
    monkeypatch.setattr(verified, "RECENT_NS", 0)
    verified.forget()
    yield
    verified.forget()


class Counting:
    """``local_path`` (the full hash) counted per digest."""

    def __init__(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = store.local_path

        def counted(digest: str) -> Path:
            self.calls.append(digest)
            return real(digest)

        monkeypatch.setattr(store, "local_path", counted)


def _rewrite(path: Path, data: bytes, *, keep_mtime: bool) -> None:
    """Replace the file's bytes in place; with ``keep_mtime``, put its modification time back."""
    before = path.stat()
    mode = before.st_mode
    path.chmod(0o600)
    with open(path, "r+b") as handle:
        handle.write(data)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    path.chmod(mode & 0o777)


def test_an_unchanged_file_is_hashed_once_and_a_touched_one_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put(b"feature table bytes")
    counted = Counting(store, monkeypatch)
    first = verified_path(store, digest)
    assert verified_path(store, digest) == first
    assert counted.calls == [digest]
    os.utime(first)  # same bytes, new times: not the file that was checked any more
    assert verified_path(store, digest) == first
    assert counted.calls == [digest, digest]


def test_same_size_bytes_with_the_old_mtime_are_hashed_again_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put(b"feature table bytes")
    path = verified_path(store, digest)
    _rewrite(path, b"FEATURE", keep_mtime=True)  # size and mtime as before; the change time moved
    with pytest.raises(IntegrityError):
        verified_path(store, digest)
    with pytest.raises(IntegrityError):  # and it is not remembered as good after failing
        verified_path(store, digest)


def test_a_file_changed_just_before_its_check_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verified, "RECENT_NS", 3600 * 10**9)
    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put(b"just written")
    counted = Counting(store, monkeypatch)
    verified_path(store, digest)
    verified_path(store, digest)
    assert counted.calls == [digest, digest]


def test_a_missing_artifact_is_not_found_even_after_a_check(tmp_path: Path) -> None:
    from medops.errors import NotFound

    store = ArtifactStore(str(tmp_path / "artifacts"))
    digest = store.put(b"soon gone")
    path = verified_path(store, digest)
    path.chmod(0o600)
    path.unlink()
    with pytest.raises(NotFound):
        verified_path(store, digest)


def test_training_sets_hash_the_table_once_and_refuse_a_tampered_one(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied = {r.view.name: r.view for r in store.apply("alice")}
    counted = Counting(store.ws.artifacts, monkeypatch)
    table = applied["vitals"].table_digest
    first = store.training_table(labels_frame(), ["vitals"], timestamp="at")
    again = store.training_table(labels_frame(), ["vitals"], timestamp="at")
    assert first.equals(again)
    assert counted.calls.count(table) == 1
    path = store.ws.artifacts.local_path(table)
    data = path.read_bytes()
    middle = len(data) // 2
    _rewrite(path, data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :], keep_mtime=True)
    with pytest.raises(IntegrityError):
        store.training_table(labels_frame(), ["vitals"], timestamp="at")
