"""Feature tables checked against their digest once per file, not once per read.

A training set reads its views' tables, and every read used to hash the whole file first:
half a second for a 500 MB table, on every call. The check is what matters, not its
repetition: this process remembers, per artifact, the identity of the file whose bytes
hashed to the digest (path, device, inode, size, modification and change times), and
hashes again whenever any of them differs. Writing, truncating, replacing, renaming over
or touching the file changes its change time (``st_ctime_ns``), which no user can set, so
a tampered table is hashed again and refused.

A file changed shortly before or while it was hashed is not remembered (filesystem clocks
are coarse): its next read hashes it again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from medops.store.artifacts import ArtifactStore

RECENT_NS = 2_000_000_000  # a file changed within this before its check is hashed again next time
REMEMBERED = 1024  # files; the oldest are forgotten first

Identity = tuple[int, int, int, int, int]

_lock = threading.Lock()
_checked: OrderedDict[tuple[str, str], tuple[Path, Identity]] = OrderedDict()


def _identity(path: Path) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verified_path(artifacts: ArtifactStore, digest: str) -> Path:
    """The artifact's local file, its SHA-256 checked now or earlier in this process on the very same file."""
    key = (artifacts.root_url, digest)
    with _lock:
        known = _checked.get(key)
        if known is not None:
            _checked.move_to_end(key)
    if known is not None:
        path, identity = known
        # On a non-local root the file is a cached copy: it is served only while the store still holds the artifact.
        if _identity(path) == identity and (artifacts.local or artifacts.exists(digest)):
            return path
    started = time.time_ns()
    path = artifacts.local_path(digest)  # hashes the file; raises IntegrityError when it does not match
    checked = _identity(path)
    with _lock:
        if checked is not None and checked[4] < started - RECENT_NS:
            _checked[key] = (path, checked)
            _checked.move_to_end(key)
            while len(_checked) > REMEMBERED:
                _checked.popitem(last=False)
        else:
            _checked.pop(key, None)
    return path


def forget() -> None:
    """Hash every file again on its next read (the tests use it)."""
    with _lock:
        _checked.clear()
