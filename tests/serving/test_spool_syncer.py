"""The spool's syncer syncs what changed, each name once it appears, and stops for good after a failed sync."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import pytest

from medops.serving import spool_syncer
from medops.serving.spool_syncer import STATE_LAYOUT, Synced, create_state, read_state, serve


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The inodes fdatasync'd and the folders fsync'd, in order."""
    calls: dict[str, list[int]] = {"files": [], "folders": []}
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        calls["files"].append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(spool_syncer, "fsync_dir", lambda folder: calls["folders"].append(1))
    return calls


def _inode(path: Path) -> int:
    return path.stat().st_ino


def _one_segment(folder: Path, name: str = "00000001.open") -> tuple[Synced, Path]:
    """A syncer on ``folder``, after its first round over one segment of one record."""
    synced = Synced(folder)
    segment = folder / name
    segment.write_bytes(b'{"id":"1"}\n')
    synced.round()
    return synced, segment


def test_a_segment_is_synced_when_it_changed_and_its_name_when_it_appeared(
    tmp_path: Path, watched: dict[str, list[int]]
) -> None:
    (tmp_path / "LOCK").write_bytes(b"")  # not a segment
    synced, segment = _one_segment(tmp_path)
    assert watched["files"] == [_inode(segment)] and watched["folders"] == [1]
    synced.round()  # nothing changed: no sync at all
    assert watched["files"] == [_inode(segment)] and watched["folders"] == [1]
    with segment.open("ab") as handle:
        handle.write(b'{"id":"2"}\n')
    synced.round()
    assert watched["files"] == [_inode(segment)] * 2 and watched["folders"] == [1]  # a known name
    synced.close()


def test_a_sealed_segment_is_let_go_since_sealing_syncs_it(tmp_path: Path, watched: dict[str, list[int]]) -> None:
    synced, segment = _one_segment(tmp_path)
    assert len(synced.files) == 1
    sealed = segment.rename(tmp_path / "00000001.log")  # Segments.seal_retired synced it, then renamed it
    for n in range(2_000):  # a database down for long: sealed segments pile up, holding no descriptor here
        (tmp_path / f"{n + 2:08d}.log").write_bytes(b'{"id":"x"}\n')
    synced.round()
    assert synced.files == {} and watched["files"] == [_inode(sealed)] and watched["folders"] == [1]
    synced.close()


def test_a_drained_segment_is_let_go_and_a_new_one_on_its_inode_is_opened_again(
    tmp_path: Path, watched: dict[str, list[int]]
) -> None:
    synced, first = _one_segment(tmp_path)
    ((fd, _, _),) = synced.files.values()
    first.unlink()
    synced.round()
    assert synced.files == {}
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    # an inode number the file system gives again: the descriptor kept for it is a deleted file's
    second = tmp_path / "00000002.open"
    second.write_bytes(b'{"id":"2"}\n' * 3)
    stale = tmp_path / "stale"
    stale.write_bytes(b"")
    stale_fd = os.open(stale, os.O_RDONLY)
    stale.unlink()
    synced.files[_inode(second)] = (stale_fd, 0, 0)
    synced.round()
    ((fd, size, _),) = synced.files.values()
    assert os.fstat(fd).st_ino == _inode(second) and os.fstat(fd).st_nlink and size == second.stat().st_size
    assert watched["files"][-1] == _inode(second)
    synced.close()


def test_the_folder_recovered_under_a_syncer_is_nothing_to_sync(tmp_path: Path) -> None:
    synced = Synced(tmp_path / "gone")
    synced.round()
    assert synced.files == {}


def _run(folder: Path, rounds: int) -> tuple[int, int, int]:
    """serve() on a thread for ``rounds`` rounds at least, then stopped by closing its control pipe."""
    read, write = os.pipe()
    thread = threading.Thread(target=serve, args=(folder, 0.001, read))
    thread.start()
    with open(folder / "SYNC", "rb") as handle:
        state = mmap.mmap(handle.fileno(), STATE_LAYOUT.size, access=mmap.ACCESS_READ)
    try:
        while read_state(state)[1] < rounds:
            thread.join(0.001)
        os.close(write)
        thread.join(30)
        assert not thread.is_alive()
        return read_state(state)
    finally:
        state.close()
        os.close(read)


def test_the_syncer_counts_its_rounds_and_syncs_and_does_a_last_round_when_told_to_stop(tmp_path: Path) -> None:
    create_state(tmp_path)
    (tmp_path / "00000001.open").write_bytes(b'{"id":"1"}\n')
    failed, rounds, syncs = _run(tmp_path, 3)
    assert failed == 0 and rounds >= 3 and syncs == 2  # the segment and the folder, once each


def test_a_failed_sync_is_reported_and_nothing_is_synced_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_state(tmp_path)
    (tmp_path / "00000001.open").write_bytes(b'{"id":"1"}\n')
    tried: list[int] = []

    def failing(fd: int) -> None:
        tried.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    failed, rounds, _ = _run(tmp_path, 3)
    # a retry would report success for data the kernel may have dropped: the server stops keeping instead
    assert failed == 5 and rounds >= 3 and len(tried) == 1


def test_a_syncer_started_after_one_whose_sync_failed_syncs_nothing_either(
    tmp_path: Path, watched: dict[str, list[int]]
) -> None:
    state = create_state(tmp_path)
    state.write_bytes(STATE_LAYOUT.pack(5, 0, 7, 1))  # what the one before left
    (tmp_path / "00000001.open").write_bytes(b'{"id":"1"}\n')
    failed, rounds, _ = _run(tmp_path, 9)
    assert failed == 5 and rounds >= 9 and watched["files"] == [] and watched["folders"] == []
