"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import PASSWORD


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
