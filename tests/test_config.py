"""Settings: file, environment overrides, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.config import find_home, load_settings, redact_url
from medops.errors import ConfigError, WorkspaceNotFound


def _write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "medops.toml").write_text(text)
    return home


def test_defaults_resolve_inside_the_workspace(tmp_path: Path) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\n')
    s = load_settings(home)
    assert s.metadata_url == f"sqlite:///{home / 'medops.db'}"
    assert s.artifact_root == str(home / "artifacts")
    assert s.default_user == "admin" and s.executor == "local"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\nartifact_root = "arts"\ndb_busy_timeout = 5\n')
    monkeypatch.setenv("MEDOPS_ARTIFACT_ROOT", "memory://x")
    monkeypatch.setenv("MEDOPS_METADATA_URL", "postgresql+psycopg://u:secret@h/db")
    monkeypatch.setenv("MEDOPS_DB_BUSY_TIMEOUT", "12.5")
    s = load_settings(home)
    assert s.artifact_root == "memory://x"
    assert s.db_busy_timeout == 12.5
    assert "secret" not in s.redacted()["metadata_url"]


def test_the_governing_project_file_is_the_workspace_file_s_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One command can't point production's gate at a looser copy of the policy."""
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\nproject_file = "reviewed/medops.yaml"\n')
    monkeypatch.setenv("MEDOPS_PROJECT_FILE", str(tmp_path / "loose.yaml"))
    assert load_settings(home).project_file == "reviewed/medops.yaml"
    assert load_settings(_write(tmp_path / "ws2", 'workspace_id = "x"\n')).project_file == "medops.yaml"


def test_the_login_rules_are_the_workspace_s_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user can't give themselves a longer session, or switch off the login for reads, from their shell."""
    defaults = load_settings(_write(tmp_path / "a", 'workspace_id = "a"\n'))
    assert (defaults.session_hours, defaults.login_for_reads) == (12.0, False)
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\nsession_hours = 8\nlogin_for_reads = true\n')
    monkeypatch.setenv("MEDOPS_SESSION_HOURS", "10000")
    monkeypatch.setenv("MEDOPS_LOGIN_FOR_READS", "false")
    s = load_settings(home)
    assert (s.session_hours, s.login_for_reads) == (8.0, True)
    with pytest.raises(ConfigError, match="session_hours must be"):
        load_settings(_write(tmp_path / "long", 'workspace_id = "x"\nsession_hours = 1000\n'))
    with pytest.raises(ConfigError, match="must be a bool"):
        load_settings(_write(tmp_path / "text", 'workspace_id = "x"\nlogin_for_reads = "yes"\n'))


def test_medops_home_and_upward_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\n')
    deep = home / "a" / "b"
    deep.mkdir(parents=True)
    assert find_home(deep, env={}) == home
    assert find_home(tmp_path, env={"MEDOPS_HOME": str(home)}) == home
    with pytest.raises(WorkspaceNotFound, match="holds no medops.toml"):
        find_home(env={"MEDOPS_HOME": str(tmp_path / "nowhere")})
    with pytest.raises(WorkspaceNotFound):
        find_home(tmp_path, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('workspace_id = "abc"\nmetadata_url = [unclosed', "not valid TOML"),
        ('workspace_id = "abc"\nmetdata_url = "sqlite:///x.db"\n', "unknown setting 'metdata_url'"),
        ('workspace_id = "abc"\ndb_busy_timeout = "soon"\n', "must be a float"),
        ('metadata_url = "sqlite:///x.db"\n', "'workspace_id' is missing"),
        ('workspace_id = "abc"\nmetadata_url = "mysql://x"\n', "scheme 'mysql' is not supported"),
        ('workspace_id = "abc"\nexecutor = "ray"\n', "executor 'ray' is not known"),
        ('workspace_id = "abc"\nprediction_log_sync = "never"\n', "prediction_log_sync 'never' is not one of"),
    ],
)
def test_bad_config_gives_a_clear_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    home = _write(tmp_path / "ws", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(home)
    if "scheme" not in message and "executor" not in message and "prediction_log_sync" not in message:
        assert "medops.toml" in info.value.message


def test_bad_environment_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\n')
    monkeypatch.setenv("MEDOPS_DB_BUSY_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="MEDOPS_DB_BUSY_TIMEOUT"):
        load_settings(home)


def test_redact_url() -> None:
    assert redact_url("postgresql+psycopg://bob:pw@host/db") == "postgresql+psycopg://bob:***@host/db"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_artifact_root_s_scheme_must_have_a_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\nartifact_root = "file:///srv/medops"\n')
    s = load_settings(home)
    assert s.artifact_root == "file:///srv/medops" and s.artifact_cache == str(home / "artifact-cache")
    monkeypatch.setenv("MEDOPS_ARTIFACT_ROOT", "ftps2://host/artifacts")
    with pytest.raises(ConfigError, match="no filesystem for the scheme 'ftps2'") as err:
        load_settings(home)
    assert "s3://" in (err.value.hint or "") and "memory://" in (err.value.hint or "")
    monkeypatch.setenv("MEDOPS_ARTIFACT_ROOT", "s3://bucket/medops")  # known; its package is checked on use
    monkeypatch.setenv("MEDOPS_ARTIFACT_CACHE", "s3://bucket/cache")
    with pytest.raises(ConfigError, match="artifact_cache 's3://bucket/cache' must be a local folder"):
        load_settings(home)


def test_the_prediction_log_settings_are_read_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _write(tmp_path / "ws", 'workspace_id = "abc"\n')
    s = load_settings(home)
    assert s.prediction_spool_root == home / "spool" / "predictions" and s.prediction_log_sync == "background"
    _write(
        home,
        'workspace_id = "abc"\nprediction_spool = "/var/lib/medops/spool"\nprediction_log_sync = "before_answer"\n',
    )
    s = load_settings(home)
    assert s.prediction_spool_root == Path("/var/lib/medops/spool") and s.prediction_log_sync == "before_answer"
    monkeypatch.setenv("MEDOPS_PREDICTION_SPOOL", str(tmp_path / "elsewhere"))  # as the container image sets it
    monkeypatch.setenv("MEDOPS_PREDICTION_LOG_SYNC", "background")
    s = load_settings(home)
    assert s.prediction_spool_root == tmp_path / "elsewhere" and s.prediction_log_sync == "background"
