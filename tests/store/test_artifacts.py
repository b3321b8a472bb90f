"""The artifact store contract, on local files and on fsspec's in-memory filesystem."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from medops.errors import ConfigError, IntegrityError, InvalidInput, NotFound
from medops.store.artifacts import CHUNK, TMP_DIR, ArtifactStore
from tests.factories import loose_umask, mode


@pytest.fixture(params=["local", "memory", "file-url"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    if request.param == "file-url":
        return ArtifactStore((tmp_path / "artifacts").as_uri())
    return ArtifactStore(f"memory://medops-test-{uuid.uuid4().hex}", cache=tmp_path / "cache")


def _corrupt(store: ArtifactStore, digest: str) -> None:
    path = store._path(digest)
    if store.local:
        os.chmod(path, 0o644)
    with store.fs.open(path, "wb") as out:
        out.write(b"not what was stored")


def test_put_returns_the_sha256_of_the_bytes(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    expected = hashlib.sha256(data).hexdigest()
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    assert store.put(data) == expected
    assert store.put(source) == expected
    assert store.put(io.BytesIO(data)) == expected
    assert store.put(iter([data[:10], data[10:]])) == expected
    assert list(store.digests()) == [expected]
    assert store.exists(expected) and store.size(expected) == len(data)
    with store.open(expected) as handle:
        assert handle.read() == data
    assert store.read_bytes(expected) == data


def test_bytes_stored_already_are_not_written_again(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = store.put(b"the same environment lock, run after run")

    def no_write(chunks: object) -> str:
        raise AssertionError("written again")

    monkeypatch.setattr(store, "_put_chunks", no_write)
    assert store.put(b"the same environment lock, run after run") == digest
    with pytest.raises(AssertionError, match="written again"):
        store.put(b"other bytes")


def test_empty_artifact(store: ArtifactStore) -> None:
    digest = store.put(b"")
    assert digest == hashlib.sha256(b"").hexdigest()
    assert store.read_bytes(digest) == b""


def test_corruption_is_detected_on_read_and_verify(store: ArtifactStore) -> None:
    digest = store.put(b"model weights v1")
    _corrupt(store, digest)
    with pytest.raises(IntegrityError, match="corrupt"):
        store.open(digest)
    with pytest.raises(IntegrityError, match="corrupt"):
        store.read_bytes(digest)
    assert store.verify(digest) is False
    report = store.verify_all()
    assert not report.ok and report.corrupt == [digest]


def test_missing_and_malformed_digests(store: ArtifactStore) -> None:
    with pytest.raises(NotFound):
        store.open("0" * 64)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, "0" * 63 + "/", ""):
        with pytest.raises(InvalidInput):
            store.exists(bad)


def test_local_artifacts_are_read_only_files(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    digest = store.put(b"x")
    assert not os.stat(store._path(digest)).st_mode & 0o222


_SLOW_WRITER = """
import sys, time
from medops.store.artifacts import ArtifactStore
store = ArtifactStore(sys.argv[1])
def chunks():
    block = b"x" * (1 << 20)
    for i in range(10_000):
        yield block
        time.sleep(0.01)
store.put(chunks())
"""


@pytest.mark.slow
def test_kill_9_mid_write_leaves_no_partial_artifact(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(root)])
    tmp_dir = root / TMP_DIR
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partial = list(tmp_dir.glob("*")) if tmp_dir.exists() else []
        if partial and partial[0].stat().st_size > 5 * (1 << 20):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the writer never got going")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(str(root))
    assert list(store.digests()) == []  # nothing half-written is visible
    report = store.verify_all()
    assert report.ok and report.checked == 0
    assert store.clean_temp(older_than=0) == 1  # the dead writer's temp file is swept
    digest = store.put(b"the next write")
    assert store.read_bytes(digest) == b"the next write"


def _staged(store: ArtifactStore, data: bytes) -> str:
    """An artifact built in a staging file, as Parquet writers build them."""
    staged = store.staging_path()
    staged.write_bytes(data)
    digest = store.adopt(staged)
    assert not staged.exists()
    return digest


def test_readers_get_a_verified_file_on_every_root(store: ArtifactStore) -> None:
    data = os.urandom(CHUNK + 5)  # more than one read
    digest = _staged(store, data)
    assert digest == hashlib.sha256(data).hexdigest() and store.read_bytes(digest) == data
    path = store.local_path(digest)
    assert path.read_bytes() == data and not os.stat(path).st_mode & 0o222
    assert store.local_path(store.put(b"put, not staged")).read_bytes() == b"put, not staged"
    if store.local:
        assert str(path) == store._path(digest)  # local files are read in place
    else:
        assert path.is_relative_to(store.cache)  # the staged file became the cached copy


def test_the_cache_is_checked_before_use_and_the_store_stays_the_truth(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://medops-test-{uuid.uuid4().hex}", cache=tmp_path / "cache")
    digest = store.put(b"training set v1")
    cached = store.local_path(digest)  # fetched while hashed
    assert cached.read_bytes() == b"training set v1"
    os.chmod(cached, 0o644)
    cached.write_bytes(b"tampered on this machine")
    assert store.local_path(digest).read_bytes() == b"training set v1"  # a damaged copy is fetched again

    other = store.put(b"evaluation predictions")
    _corrupt(store, other)
    with pytest.raises(IntegrityError, match="corrupt"):
        store.local_path(other)  # a corrupt artifact never reaches the cache
    assert not (tmp_path / "cache" / "sha256" / other[:2]).exists()

    store.fs.rm(store._path(digest))
    with pytest.raises(NotFound):
        store.local_path(digest)  # a cached copy alone is not an artifact


def test_the_cache_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Cached copies of datasets and models are the owner's alone: folders 0700, files read-only 0400."""
    with loose_umask(0o022):
        store = ArtifactStore(f"memory://medops-test-{uuid.uuid4().hex}", cache=tmp_path / "cache")
        cached = store.local_path(store.put(b"a de-identified table"))
        staged = store.staging_path()
        staged.write_bytes(b"a model")
        adopted = store.local_path(store.adopt(staged))
    assert mode(cached) == mode(adopted) == 0o400
    folders = [tmp_path / "cache", *(p for p in (tmp_path / "cache").rglob("*") if p.is_dir())]
    assert len(folders) > 3 and {mode(p) for p in folders} == {0o700}


def test_clean_temp_sweeps_the_cache_too(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://medops-test-{uuid.uuid4().hex}", cache=tmp_path / "cache")
    store.staging_path().write_bytes(b"left by a crashed writer")
    assert store.clean_temp(older_than=3600) == 0  # maybe a live writer's
    assert store.clean_temp(older_than=0) == 1
    assert list((tmp_path / "cache" / TMP_DIR).iterdir()) == []


def test_an_unusable_root_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.registry import known_implementations

    with pytest.raises(ConfigError, match="no filesystem for the scheme 'nope'") as err:
        ArtifactStore("nope://bucket/artifacts")
    assert "memory://" in (err.value.hint or "")
    # A scheme fsspec knows whose package is not installed: the hint names the package.
    monkeypatch.setitem(known_implementations, "vault", {"class": "vaultfs_pkg.VaultFS", "err": "Install vaultfs_pkg"})
    with pytest.raises(ConfigError, match="can't be used") as err:
        ArtifactStore("vault://bucket/artifacts")
    assert "pip install vaultfs_pkg" in (err.value.hint or "")
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(ConfigError) as err:
            ArtifactStore("s3://bucket/artifacts")
        assert "pip install s3fs" in (err.value.hint or "")
