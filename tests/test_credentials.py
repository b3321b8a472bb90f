"""Where a command finds its credential: MEDOPS_TOKEN first, else a private session file outside the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medops.config import Settings
from medops.credentials import forget_session, presented, save_session, session_file, stored_session
from medops.errors import ConfigError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "ws", workspace_id="w1", metadata_url="sqlite://", artifact_root=str(tmp_path))


def test_a_session_is_kept_private_per_workspace_and_the_token_variable_wins(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert presented(settings) is None
    path = save_session(settings, "medops_abc_secret")
    assert path == tmp_path / "sessions" / "w1.session" == session_file(settings)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["w1.session"]  # no temporary file left behind
    found = presented(settings)
    assert found is not None and (found.secret, found.source, found.path) == ("medops_abc_secret", "session", path)
    assert "secret" not in repr(found)
    monkeypatch.setenv("MEDOPS_USER", "admin")  # a name is no credential
    monkeypatch.setenv("MEDOPS_TOKEN", "medops_def_token")
    found = presented(settings)
    assert found is not None and (found.secret, found.where) == ("medops_def_token", "MEDOPS_TOKEN")
    assert stored_session(settings) is not None  # logout still finds the file
    assert forget_session(settings) and not path.exists() and not forget_session(settings)


def test_loose_permissions_are_refused(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_session(settings, "medops_abc_secret")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="can be read by other users"):
        presented(settings)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    monkeypatch.setenv("MEDOPS_SESSION_DIR", str(shared))
    with pytest.raises(ConfigError, match="open to other users"):
        save_session(settings, "medops_abc_secret")
    assert list(shared.iterdir()) == []
