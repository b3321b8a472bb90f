"""Files and folders only their owner may read: the metadata database, keys and caches.

Modes are set explicitly rather than left to the process umask, so a shell with umask 022
(the usual default) still makes 0600 files and 0700 folders. ``exposed`` is the test
`medops doctor` and the key loaders apply to files made before this was the rule.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents 0700; folders that exist already are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process: not ours to change
            continue
        os.chmod(folder, PRIVATE_DIR)


def create_private_file(path: Path) -> bool:
    """Create an empty 0600 file if none is there (True), so whatever fills it later inherits the mode.

    SQLite, for one, opens an existing file as is and makes its -wal and -shm files with the
    database file's permissions.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def exposed(path: Path) -> bool:
    """Whether the group or other users may read, write or enter ``path`` (always False on Windows)."""
    if os.name == "nt":
        return False
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def chmod_hint(path: Path) -> str:
    return f"run: chmod {'700' if path.is_dir() else '600'} {path}"
