"""Creating and opening workspaces; a failed init leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.audit import AuditFilter, list_events, verify_chain
from medops.caller import Caller
from medops.cli.common import cli_caller
from medops.errors import AuthenticationFailed, ConfigError, Conflict, DatabaseUnreachable, InvalidInput
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD, log_in, loose_umask, mode


def test_init_creates_everything_and_audits_it(workspace: Workspace) -> None:
    home = workspace.settings.home
    assert (home / "medops.toml").is_file()
    assert Path(workspace.settings.signing_key_file).stat().st_mode & 0o777 == 0o600
    assert not Path(workspace.settings.signing_key_file).is_relative_to(home)  # the key lives outside
    assert workspace.users.get("admin").roles == ("admin",)
    actions = [e.action for e in list_events(workspace.db, AuditFilter(), newest_first=False)]
    assert actions == ["user.add", "signing_key.register"]
    assert verify_chain(workspace.db).ok
    with Workspace.open(home) as again:  # nothing acts as the first admin by default: a change needs a login
        with pytest.raises(AuthenticationFailed) as refused:
            cli_caller(again, writes=True)
        assert refused.value.code == "login_required"
        reader = cli_caller(again, writes=False)  # a read runs anonymously (login_for_reads is off by default)
        assert (reader.user, reader.channel, reader.authenticated) == ("anonymous", "anonymous", False)


def test_the_database_and_keys_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """medops.db holds password hashes and the trail: under umask 022 it was made 0644, readable by every local user."""
    with loose_umask(0o022):
        ws = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="A", admin_password=PASSWORD)
        try:
            ws.users.add("admin", "alice", "Alice Moreau", PASSWORD, [])  # a write, so the WAL files are there
            db = ws.settings.home / "medops.db"
            for path in (db, db.with_name("medops.db-wal"), db.with_name("medops.db-shm")):
                assert path.exists() and mode(path) == 0o600, path
            signing, pseudonym = Path(ws.settings.signing_key_file), Path(ws.settings.pseudonym_key_file)
            assert mode(signing) == mode(pseudonym) == 0o600
            assert mode(signing.parent) == 0o700  # the key folder: nobody else may even list it
        finally:
            ws.close()


def test_init_twice_is_refused(workspace: Workspace) -> None:
    with pytest.raises(Conflict, match="already"):
        init_workspace(workspace.settings.home, admin_username="x2", admin_full_name="X", admin_password=PASSWORD)


def test_failed_init_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new"
    with pytest.raises(DatabaseUnreachable):
        init_workspace(
            target,
            admin_username="admin",
            admin_full_name="A",
            admin_password=PASSWORD,
            metadata_url="postgresql+psycopg://postgres@127.0.0.1:1/x",
        )
    assert not target.exists()
    with pytest.raises(InvalidInput):
        init_workspace(target, admin_username="admin", admin_full_name="A", admin_password="short")
    assert not target.exists()
    assert not any((tmp_path / "keys").glob("*")) if (tmp_path / "keys").exists() else True
    with pytest.raises(ConfigError, match="no filesystem for the scheme 'nope'"):
        init_workspace(
            target, admin_username="admin", admin_full_name="A", admin_password=PASSWORD, artifact_root="nope://x"
        )
    assert not target.exists()


def test_a_relative_artifact_root_is_in_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ws = init_workspace(
        tmp_path / "ws", admin_username="admin", admin_full_name="A", admin_password=PASSWORD, artifact_root="arts"
    )
    ws.close()
    assert ws.settings.artifact_root == str(tmp_path / "ws" / "arts") and not (tmp_path / "arts").exists()
    with Workspace.open(tmp_path / "ws") as again:  # medops.toml says the same
        assert again.settings.artifact_root == ws.settings.artifact_root


def test_the_cli_caller_comes_from_a_verified_credential_only(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_USER", "admin")  # a name alone grants nothing
    with Workspace.open(workspace.settings.home) as ws:
        with pytest.raises(AuthenticationFailed, match="log in"):
            cli_caller(ws, writes=True)
        log_in(ws, "admin")
        caller = cli_caller(ws, writes=True)
        assert (caller.user, caller.channel) == ("admin", "session")
        assert not hasattr(ws, "actor")  # the workspace serves every caller; it has no user of its own
        assert cli_caller(ws, writes=True).request_id != caller.request_id


def test_a_caller_needs_a_user_and_a_known_channel() -> None:
    with pytest.raises(InvalidInput, match="user name"):
        Caller(" ")
    with pytest.raises(InvalidInput, match="channel"):
        Caller("alice", channel="email")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="anonymous"):
        Caller("anonymous", channel="cli")  # only the anonymous channel reads under that name
