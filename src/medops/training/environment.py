"""What a run ran on: the exact installed distributions, the git commit, the host.

The environment lock is every installed distribution as ``name==version``, sorted: the
same environment gives the same bytes, so it is stored once in the artifact store and a
run names it by its SHA-256. Comparing two locks says which packages changed.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path


@cache
def environment_lock() -> str:
    """``name==version`` per installed distribution, one per line, sorted by name.

    Read once per process (it takes tens of milliseconds): a package installed while a
    process runs is not imported by it either.
    """
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            seen.setdefault(name.lower().replace("_", "-"), f"{name}=={dist.version}")
    return "".join(f"{seen[key]}\n" for key in sorted(seen))


def lock_differences(before: str, after: str) -> list[str]:
    """Human lines saying which distributions were added, removed or changed version."""
    old = parse_lock(before)
    new = parse_lock(after)
    lines = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            lines.append(f"removed {name}=={old[name]}")
        elif name not in old:
            lines.append(f"added {name}=={new[name]}")
        elif old[name] != new[name]:
            lines.append(f"{name} {old[name]} -> {new[name]}")
    return lines


def parse_lock(lock: str) -> dict[str, str]:
    """Distribution name (lower case) -> version."""
    out = {}
    for line in lock.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            out[name.lower()] = version
    return out


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: bool | None


GIT_STATUS = ["git", "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=no"]


def git_state(folder: Path) -> GitState:
    """The commit checked out in ``folder`` and whether tracked files differ from it; unknown outside git."""
    return start_git_state(folder)()


def start_git_state(folder: Path) -> Callable[[], GitState]:
    """Ask git now, read the answer later: a run starts at once and collects it when it ends.

    One ``git status`` answers both questions (its branch header names the commit). Outside
    a repository no process is started at all; in one whose records are all as git's last
    answer found them, none either (medops.training.git_memory).
    """
    from medops.training.git_memory import MEMORY

    root = _repository_root(folder)
    if root is None:
        return lambda: GitState(None, None)
    before = MEMORY.snapshot(root)  # taken before git reads anything: its answer is at least as new
    if before is not None and (known := MEMORY.recall(root, before)) is not None:
        return lambda: known
    learning = MEMORY.learn_files(root) if before is None and MEMORY.modelled(root) else None
    output = started(GIT_STATUS, folder)
    answer: list[GitState] = []

    def collect() -> GitState:
        if not answer:
            out = output()
            answer.append(_parse_status(out.decode(errors="replace")) if out is not None else GitState(None, None))
            if before is not None:
                MEMORY.remember(root, before, answer[0])
            elif learning is not None:
                learning()
        return answer[0]

    return collect


def started(command: list[str], cwd: Path) -> Callable[[], bytes | None]:
    """Start ``command`` now; the returned call waits for it (10 s at most) and gives its output, or None
    when it could not start, failed, or took too long (then it is killed)."""
    try:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return lambda: None

    def output() -> bytes | None:
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
        return out if process.returncode == 0 else None

    return output


def _repository_root(folder: Path) -> Path | None:
    here = folder.resolve()
    return next((d for d in (here, *here.parents) if (d / ".git").exists()), None)


def _parse_status(out: str) -> GitState:
    lines = out.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return GitState(None, None)
    return GitState(commit, any(line and not line.startswith("#") for line in lines))


def host_name() -> str:
    return socket.gethostname()
