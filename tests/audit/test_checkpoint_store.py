"""The checkpoint store writes each name once, on local disk and on any fsspec root."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from medops.audit.checkpoint_store import CheckpointStore
from medops.errors import Conflict, InvalidInput, NotFound


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    if request.param == "folder":
        return CheckpointStore(str(tmp_path / "checkpoints"))
    return CheckpointStore(f"memory://checkpoints-{uuid.uuid4().hex}")


def test_documents_are_written_once_under_safe_names(store: CheckpointStore) -> None:
    assert store.names() == []  # nothing is created until the first write
    name = "000000000001-000000000001-0123456789abcdef.checkpoint"
    store.write_once(name, b"one")
    assert store.read(name) == b"one" and name in store.names()
    with pytest.raises(Conflict, match="never overwrites"):
        store.write_once(name, b"two")
    assert store.read(name) == b"one"
    for bad in ("../x", "a/b", "..", "/etc/passwd", "X", ""):
        with pytest.raises(InvalidInput):
            store.write_once(bad, b"x")
    with pytest.raises(NotFound):
        store.read("missing.checkpoint")


def test_a_local_store_is_private_and_leaves_no_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "checkpoints"
    store = CheckpointStore(str(root))
    store.write_once("a.checkpoint", b"x")
    assert root.stat().st_mode & 0o777 == 0o700 and (root / "a.checkpoint").stat().st_mode & 0o777 == 0o400
    assert list((root / ".tmp").iterdir()) == []
