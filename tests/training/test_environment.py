"""What a run records about its code and packages: the git state and the environment lock."""

from __future__ import annotations

import subprocess
from pathlib import Path

from medops.training.environment import environment_lock, git_state, lock_differences


def _git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def test_git_state_names_the_commit_and_sees_edits(tmp_path: Path) -> None:
    assert git_state(tmp_path).commit is None  # not a repository
    _git(tmp_path, "init", "-q")
    assert git_state(tmp_path) == git_state(tmp_path) and git_state(tmp_path).commit is None  # nothing committed
    (tmp_path / "train.py").write_text("print('v1')\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "v1")
    head = _git(tmp_path, "rev-parse", "HEAD")
    state = git_state(tmp_path)
    assert state.commit == head and state.dirty is False  # an untracked file is not an edit
    (tmp_path / "train.py").write_text("print('v2')\n")
    assert git_state(tmp_path).dirty is True
    _git(tmp_path, "checkout", "-q", "--detach")
    assert git_state(tmp_path).commit == head


def test_the_lock_is_sorted_and_differences_are_named() -> None:
    lock = environment_lock()
    lines = lock.splitlines()
    assert lines == sorted(lines, key=lambda line: line.split("==")[0].lower().replace("_", "-"))
    assert any(line.startswith("pytest==") for line in lines)
    changed = lock_differences("a==1\nb==2\n", "b==3\nc==1\n")
    assert changed == ["removed a==1", "b 2 -> 3", "added c==1"]
