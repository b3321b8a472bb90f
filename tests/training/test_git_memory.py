"""git's answer is given again only while every record it read is unchanged: each kind of change
asks git anew, and gets git's own answer."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from medops.training import git_memory
from medops.training.environment import GIT_STATUS, GitState, git_state
from tests.training.test_environment import _git

SETTLE = 0.05  # the racy window in these tests; the real one is 2 s


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The `git status` processes started, with a memory of this test's own and a short racy window."""
    monkeypatch.setattr(git_memory, "MEMORY", git_memory.GitMemory())
    monkeypatch.setattr(git_memory, "RACY_SECONDS", SETTLE)
    started: list[str] = []
    real = subprocess.Popen

    def counting(args: list[str], *rest: object, **kwargs: object) -> subprocess.Popen[str]:
        if args == GIT_STATUS:  # medops's question (the tests' own `git status` is not counted)
            started.append(str(kwargs.get("cwd")))
        return real(args, *rest, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", counting)
    return started


def _repo(folder: Path) -> str:
    _git(folder, "init", "-q")
    (folder / "train.py").write_text("print('v1')\n")
    (folder / "params.yaml").write_text("C: 1\n")
    _git(folder, "add", "train.py", "params.yaml")
    _git(folder, "commit", "-q", "-m", "v1")
    return _git(folder, "rev-parse", "HEAD")


def _settled(folder: Path, asked: list[str]) -> GitState:
    """Past the racy window, git asked once more (and remembered): the state now, from memory."""
    time.sleep(SETTLE * 2)
    state = git_state(folder)  # learns the tracked files
    state = git_state(folder)  # asks git with a snapshot taken before: remembered
    count = len(asked)
    assert git_state(folder) == state and len(asked) == count  # from memory, no process
    return state


def _truth(folder: Path) -> GitState:
    """What git says now, with no memory at all."""
    out = subprocess.run(
        ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commit = next(line.split()[2] for line in out.splitlines() if line.startswith("# branch.oid "))
    return GitState(commit, any(line and not line.startswith("#") for line in out.splitlines()))


CHANGES: dict[str, Callable[[Path], None]] = {
    "an edit of the same size": lambda d: (d / "train.py").write_text("print('v2')\n"),
    "a chmod": lambda d: (d / "train.py").chmod(0o755),
    "a deleted file": lambda d: (d / "params.yaml").unlink(),
    "a staged new file": lambda d: ((d / "new.py").write_text("x = 1\n"), _git(d, "add", "new.py")),
    "a commit": lambda d: (
        (d / "params.yaml").write_text("C: 2\n"),
        _git(d, "commit", "-q", "-am", "v2"),
    ),
    "another branch checked out": lambda d: (
        _git(d, "checkout", "-q", "-b", "other"),
        (d / "train.py").write_text("print('other')\n"),
        _git(d, "commit", "-q", "-am", "other"),
        _git(d, "checkout", "-q", "-"),
        _git(d, "checkout", "-q", "other"),
    ),
    "a file replaced by a symlink": lambda d: ((d / "params.yaml").unlink(), (d / "params.yaml").symlink_to("x")),
    "attributes set for the repository": lambda d: (
        (d / ".git" / "info").mkdir(exist_ok=True),
        (d / ".git" / "info" / "attributes").write_text("*.py text eol=crlf\n"),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_kind_of_change_asks_git_again(tmp_path: Path, asked: list[str], change: str) -> None:
    head = _repo(tmp_path)
    assert _settled(tmp_path, asked) == GitState(head, False)
    count = len(asked)
    CHANGES[change](tmp_path)
    assert git_state(tmp_path) == _truth(tmp_path)
    assert len(asked) == count + 1


def test_an_untracked_file_changes_nothing_git_reports(tmp_path: Path, asked: list[str]) -> None:
    head = _repo(tmp_path)
    _settled(tmp_path, asked)
    count = len(asked)
    (tmp_path / "scratch.csv").write_text("a,b\n")
    (tmp_path / "sub").mkdir()
    assert git_state(tmp_path / "sub") == GitState(head, False) == _truth(tmp_path)  # from a subfolder too
    assert len(asked) == count


def test_a_tree_changed_within_the_racy_window_is_never_remembered(
    tmp_path: Path, asked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_memory, "RACY_SECONDS", 3600.0)  # every file is new
    _repo(tmp_path)
    for _ in range(4):
        git_state(tmp_path)
    assert len(asked) == 4


@pytest.mark.parametrize("kind", ["too many files", "a submodule", "GIT_DIR set", "a .git file"])
def test_what_the_memory_does_not_model_asks_git_every_time(
    tmp_path: Path, asked: list[str], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    head = _repo(tmp_path)
    if kind == "too many files":
        monkeypatch.setattr(git_memory, "MAX_FILES", 1)
    elif kind == "a submodule":
        sub = tmp_path.parent / f"{tmp_path.name}-lib"
        sub.mkdir()
        _repo(sub)
        _git(tmp_path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "lib")
        _git(tmp_path, "commit", "-q", "-m", "lib")
        head = _git(tmp_path, "rev-parse", "HEAD")
    elif kind == "GIT_DIR set":
        monkeypatch.setenv("GIT_DIR", str(tmp_path / ".git"))
    else:
        worktree = tmp_path.parent / f"{tmp_path.name}-wt"
        _git(tmp_path, "worktree", "add", "-q", "--detach", str(worktree))
        tmp_path = worktree  # its .git is a file naming the repository's folder
    time.sleep(SETTLE * 2)
    for _ in range(3):
        assert git_state(tmp_path) == GitState(head, False)
    assert len(asked) == 3


def test_outside_a_repository_nothing_is_asked(tmp_path: Path, asked: list[str]) -> None:
    assert git_state(tmp_path) == GitState(None, None) and asked == []
    assert not os.path.exists(tmp_path / ".git")
