"""git's answer about a repository, remembered while nothing it read has changed.

Why: each run records the commit and whether tracked files differ from it, and asking git costs
a process (1.2 to 1.5 ms here, most of it starting git). A tuning job or a cross-validation
opens many short runs from the same tree, each waiting on that process at its end. git's own
answer rests on the file system's records: the files under ``.git`` that name the commit and
hold the index, and each tracked file's inode, size, times and mode (git compares a file's
content only when those differ from what its index recorded). This module records the same,
with ``lstat``, just before git is asked, and gives git's answer again to a later run that
finds every record unchanged: the same question about the same bytes.

A change always shows: a write or a chmod moves a file's ctime, which no program can set back,
and git replaces the index and refs by new files. What could hide one is the clock's tick: two
writes within one tick of the file system's clock, with the same size. So an answer is
remembered only when every record is older than RACY_SECONDS when git is asked, as git itself
distrusts entries as new as its index. Anything this does not model asks git every time: a
repository whose ``.git`` is not a folder (worktrees, submodules' checkouts), one with
submodules, one with more than MAX_FILES tracked files (its stats would cost more than git),
or a process with GIT_DIR and the like set. Not seen: a ``.gitattributes`` that no commit
tracks, added beside a file whose stat data already differed from the index, which can change
how git compares that file's content (tracked ones are records like any other file).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medops.training.environment import GitState, started

MAX_FILES = 2000
RACY_SECONDS = 2.0  # coarser than any file system's clock medops runs on (FAT's is 2 s)
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")
_GITLINK = "160000"  # a submodule's entry in the index
_GIT_FILES = ("packed-refs", "config", "info/attributes")  # besides HEAD, the index and the branch's ref

Mark = tuple[int, int, int, int, int] | None  # inode, size, mtime ns, ctime ns, mode; None: missing


def _mark(path: Path) -> Mark:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


@dataclass(frozen=True)
class Snapshot:
    """What git's answer rests on, taken just before git is asked."""

    head: bytes  # .git/HEAD: the branch (or commit) checked out
    git_files: tuple[Mark, ...]  # the index, the branch's ref, and _GIT_FILES
    files: tuple[Mark, ...]  # each tracked file, in the index's order
    taken_ns: int  # when, by the wall clock the file system stamps times with

    def same_tree(self, other: Snapshot) -> bool:
        return (self.head, self.git_files, self.files) == (other.head, other.git_files, other.files)

    def settled(self) -> bool:
        """Every record older than RACY_SECONDS: no write can hide in the clock's tick."""
        cutoff = self.taken_ns - int(RACY_SECONDS * 1e9)
        marks = [m for m in (*self.git_files, *self.files) if m is not None]
        return all(m[2] < cutoff and m[3] < cutoff for m in marks)


class GitMemory:
    """Per repository root: its tracked files (by the index they were read from) and git's last answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[Path, tuple[Mark, tuple[str, ...] | None]] = {}
        self._answers: dict[Path, tuple[Snapshot, GitState]] = {}

    @staticmethod
    def modelled(root: Path) -> bool:
        """A plain repository whose records this module reads; any other is asked every time."""
        return not any(os.environ.get(name) for name in _GIT_ENV) and (root / ".git").is_dir()

    def snapshot(self, root: Path) -> Snapshot | None:
        """The records git's answer rests on now; None until its tracked files are known, or if not modelled."""
        git = root / ".git"
        if not self.modelled(root):
            return None
        taken = time.time_ns()
        try:
            head = (git / "HEAD").read_bytes()
        except OSError:
            return None
        ref = head[5:].strip().decode(errors="replace") if head.startswith(b"ref: ") else None
        index = _mark(git / "index")
        with self._lock:
            known = self._tracked.get(root)
        if known is None or known[0] != index or known[1] is None:
            return None
        branch = _mark(git / ref) if ref else None
        git_files = (index, branch, *(_mark(git / name) for name in _GIT_FILES))
        return Snapshot(head, git_files, tuple(_mark(root / name) for name in known[1]), taken)

    def recall(self, root: Path, now: Snapshot) -> GitState | None:
        with self._lock:
            stored = self._answers.get(root)
        return stored[1] if stored is not None and stored[0].same_tree(now) else None

    def remember(self, root: Path, asked: Snapshot, answer: GitState) -> None:
        """git's ``answer``, given after ``asked`` was taken, for later runs that find the same records."""
        if answer.commit is not None and asked.settled():
            with self._lock:
                self._answers[root] = (asked, answer)

    def learn_files(self, root: Path) -> Callable[[], None]:
        """Start reading the tracked files from the index (once per index), for the next snapshot;
        the returned call finishes it."""
        index = _mark(root / ".git" / "index")
        with self._lock:
            known = self._tracked.get(root)
        if known is not None and known[0] == index:
            return lambda: None
        output = started(["git", "--no-optional-locks", "ls-files", "--stage", "-z"], root)

        def finish() -> None:
            out = output()
            if out is None:
                return
            entries = [e for e in out.decode("utf-8", errors="surrogateescape").split("\0") if e]
            names: tuple[str, ...] | None = tuple(e.split("\t", 1)[1] for e in entries)
            if len(entries) > MAX_FILES or any(e.startswith(_GITLINK) for e in entries):
                names = None  # too many to stat, or a submodule whose state lives elsewhere: ask git
            with self._lock:
                self._tracked[root] = (index, names)

        return finish


MEMORY = GitMemory()
