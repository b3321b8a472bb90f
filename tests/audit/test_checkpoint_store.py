"""The checkpoint store writes each name once, on local disk and on any fsspec root."""

from __future__ import annotations

import time
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
    store.close()  # the file made ahead for the next write goes with the store
    assert list((root / ".tmp").iterdir()) == []


def _spare_ready(store: CheckpointStore) -> list[Path]:
    folder = Path(store.root) / ".tmp"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not list(folder.glob("spare-*.tmp")):
        time.sleep(0.01)
    return list(folder.glob("spare-*.tmp"))


def test_each_write_makes_the_next_one_s_file_ahead_and_writes_into_it(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    store = CheckpointStore(str(root))
    store.write_once("a.checkpoint", b"first")  # the first makes its own file
    (spare,) = _spare_ready(store)  # then one is made for the next
    assert spare.stat().st_size == 0 and spare.stat().st_mode & 0o777 == 0o400
    inode = spare.stat().st_ino
    store.write_once("b.checkpoint", b"second")
    assert (root / "b.checkpoint").stat().st_ino == inode and (root / "b.checkpoint").read_bytes() == b"second"
    assert not spare.exists()
    with pytest.raises(Conflict):  # a refused name leaves no temp file behind, and the next write still works
        store.write_once("b.checkpoint", b"again")
    _spare_ready(store)
    store.write_once("c.checkpoint", b"third")
    assert [p.name for p in sorted(root.glob("*.checkpoint"))] == ["a.checkpoint", "b.checkpoint", "c.checkpoint"]
    store.close()
    assert list((root / ".tmp").iterdir()) == []
    store.write_once("d.checkpoint", b"after close")  # closed: each write makes its own file again
    assert (root / "d.checkpoint").read_bytes() == b"after close" and list((root / ".tmp").iterdir()) == []


def test_a_forked_child_does_not_write_into_its_parent_s_spare(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "checkpoints"))
    store.write_once("a.checkpoint", b"x")
    (spare,) = _spare_ready(store)
    assert store._spare is not None
    store._spare._pid = -1  # as a child of fork sees it: the pid the store was made in
    store.write_once("b.checkpoint", b"child")
    assert spare.exists()  # left to the parent, which still holds it open
    assert (Path(store.root) / "b.checkpoint").stat().st_ino != spare.stat().st_ino


def test_a_spare_left_by_a_crash_harms_nothing(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / ".tmp").mkdir(parents=True, mode=0o700)
    (root / ".tmp" / "spare-0123.tmp").write_bytes(b"")
    store = CheckpointStore(str(root))
    store.write_once("a.checkpoint", b"x")
    assert store.read("a.checkpoint") == b"x" and [n for n in store.names() if n.endswith(".checkpoint")] == [
        "a.checkpoint"
    ]
    store.close()


def test_a_store_folder_removed_under_its_spare_is_made_again(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "checkpoints"
    store = CheckpointStore(str(root))
    store.write_once("a.checkpoint", b"x")
    _spare_ready(store)
    shutil.rmtree(root)  # an operator starts the store afresh
    store.write_once("b.checkpoint", b"y")
    assert store.read("b.checkpoint") == b"y"
    store.close()
