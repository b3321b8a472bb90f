"""The artifact store contract, on local files and on fsspec's in-memory filesystem."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from medops.errors import IntegrityError, InvalidInput, NotFound
from medops.store.artifacts import TMP_DIR, ArtifactStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    return ArtifactStore(f"memory://medops-test-{uuid.uuid4().hex}")


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


def test_named_documents_are_written_once_under_safe_names(store: ArtifactStore) -> None:
    from medops.errors import Conflict

    store.put_named("audit-checkpoints", "000000000001-ab.checkpoint", b"one")
    assert store.read_named("audit-checkpoints", "000000000001-ab.checkpoint") == b"one"
    assert store.list_named("audit-checkpoints") == ["000000000001-ab.checkpoint"]
    with pytest.raises(Conflict):
        store.put_named("audit-checkpoints", "000000000001-ab.checkpoint", b"two")
    for bad in ("../x", "a/b", "..", "/etc/passwd", "X", ""):
        with pytest.raises(InvalidInput):
            store.put_named("audit-checkpoints", bad, b"x")
    with pytest.raises(NotFound):
        store.read_named("audit-checkpoints", "missing")
    assert list(store.digests()) == []
