"""Fixtures of the CLI tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import PASSWORD, Platform, run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace made by `medops init --template readmission` (600 patients), as the current folder."""
    home = tmp_path / "readmission"
    monkeypatch.setenv("MEDOPS_ADMIN_PASSWORD", PASSWORD)
    from medops.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["init", str(home), "--admin", "ada", "--template", "readmission", "--patients", "600"])
    assert done.value.code in (0, None)
    monkeypatch.chdir(home)
    return home


@dataclass
class Both:
    """The CLI in this process, run against the workspace's database or against the platform server."""

    platform: Platform
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def local(self, user: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        self.monkeypatch.setenv("MEDOPS_TOKEN", self.platform.tokens[user])
        self.monkeypatch.setenv("MEDOPS_HOME", str(self.platform.workspace))
        self.monkeypatch.delenv("MEDOPS_SERVER_URL", raising=False)
        return run(list(args), self.capsys, stdin=stdin, monkeypatch=self.monkeypatch)

    def remote(self, user: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        self.monkeypatch.setenv("MEDOPS_TOKEN", self.platform.tokens[user])
        self.monkeypatch.delenv("MEDOPS_HOME", raising=False)
        self.monkeypatch.chdir(self.platform.elsewhere)
        self.monkeypatch.setenv("MEDOPS_SERVER_URL", self.platform.url)
        return run(list(args), self.capsys, stdin=stdin, monkeypatch=self.monkeypatch)

    def same(self, user: str, *args: str) -> str:
        """The command's output, asserted identical both ways (and successful); returns it."""
        here, there = self.local(user, *args), self.remote(user, *args)
        assert here[0] == 0, here[2]
        assert there == here, f"medops {' '.join(args)} differs over the server"
        return here[1]


@pytest.fixture
def both(platform: Platform, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Both:
    return Both(platform, capsys, monkeypatch)
