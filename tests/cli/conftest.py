"""Fixtures of the CLI tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.factories import PASSWORD, run, start_serve

if TYPE_CHECKING:
    from medops.demo import DemoResult


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


@dataclass(frozen=True)
class Platform:
    """A copy of the demo's workspace behind a running `medops server`, and an API token per demo user."""

    workspace: Path
    url: str
    tokens: dict[str, str]
    elsewhere: Path  # a folder with no workspace above it: where a client of the server runs


@pytest.fixture(scope="module")
def platform(demo: DemoResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One server per test module (its state builds up through the module's tests, in order)."""
    from medops.workspace import Workspace

    folder = tmp_path_factory.mktemp("platform")
    base, copy = demo.home.parent, folder / "demo"
    shutil.copytree(base, copy)
    settings = copy / "workspace" / "medops.toml"
    settings.write_text(settings.read_text().replace(str(base), str(copy)))
    with Workspace.open(copy / "workspace") as ws:
        tokens = {u: ws.tokens.create(u, "cli over the server", expires_in_days=1)[1] for u in DEMO_PEOPLE}
    with pytest.MonkeyPatch.context() as env:  # module scope: the per-test environment is not set up yet
        for name in list(os.environ):
            if name.startswith("MEDOPS_") and name not in ("MEDOPS_TEST_PG", "MEDOPS_TEST_REDIS"):
                env.delenv(name)
        env.setenv("MEDOPS_HOME", str(copy / "workspace"))
        process, url = start_serve([], command_name="server", log=folder / "server.log")
    (folder / "client").mkdir()
    try:
        yield Platform(copy / "workspace", url, tokens, folder / "client")
    finally:
        process.terminate()
        process.wait(30)


DEMO_PEOPLE = ("ada", "alice", "ming", "victor", "carol", "pat")


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
