"""What a run ran on: the exact installed distributions, the git commit, the host.

The environment lock is every installed distribution as ``name==version``, sorted: the
same environment gives the same bytes, so it is stored once in the artifact store and a
run names it by its SHA-256. Comparing two locks says which packages changed.
"""

from __future__ import annotations

import socket
import subprocess
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
    old = _parse(before)
    new = _parse(after)
    lines = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            lines.append(f"removed {name}=={old[name]}")
        elif name not in old:
            lines.append(f"added {name}=={new[name]}")
        elif old[name] != new[name]:
            lines.append(f"{name} {old[name]} -> {new[name]}")
    return lines


def _parse(lock: str) -> dict[str, str]:
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


def git_state(folder: Path) -> GitState:
    """The commit checked out in ``folder`` and whether tracked files differ from it; unknown outside git.

    One ``git status`` answers both (its branch header names the commit): every run pays for it.
    """
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return GitState(None, None)
    lines = out.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":
        return GitState(None, None)
    return GitState(commit, any(line and not line.startswith("#") for line in lines))


def host_name() -> str:
    return socket.gethostname()
