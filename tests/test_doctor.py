"""`medops doctor` finds what is wrong and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.doctor import FAIL, OK, WARN, run_checks
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD, remove_checkpoint_store


def _by_name(home: Path) -> dict[str, tuple[str, str]]:
    _, checks = run_checks(home)
    return {c.name: (c.status, c.fix) for c in checks}


def test_healthy_workspace(workspace: Workspace) -> None:
    checks = _by_name(workspace.settings.home)
    assert {status for status, _ in checks.values()} == {OK}, checks
    assert {"config", "metadata database", "schema", "signing key", "audit trail", "artifact store"} <= set(checks)


def test_redis_online_store_is_checked(workspace: Workspace, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_ONLINE_STORE", f"{redis_url}/0")
    assert _by_name(workspace.settings.home)["online store"][0] == OK
    monkeypatch.setenv("MEDOPS_ONLINE_STORE", "redis://127.0.0.1:1/0")
    status, fix = _by_name(workspace.settings.home)["online store"]
    assert status == FAIL and "start Redis" in fix


def test_unreachable_dask_scheduler(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_EXECUTOR", "dask://127.0.0.1:1")
    assert _by_name(workspace.settings.home)["executor"][0] == FAIL


def test_missing_signing_key_and_unwritable_artifacts(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEDOPS_SIGNING_KEY_FILE", str(tmp_path / "nope.key"))
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("MEDOPS_ARTIFACT_ROOT", str(blocker / "sub"))
    checks = _by_name(workspace.settings.home)
    assert checks["signing key"][0] == FAIL and "signing_key_file" in checks["signing key"][1]
    assert checks["artifact store"][0] == FAIL
    failed = next(c for c in run_checks(workspace.settings.home)[1] if c.name == "signing key")
    assert f"looked in {tmp_path / 'nope.key'}" in failed.detail  # a copied workspace: where the key was expected


def test_an_artifact_root_in_memory_is_a_warning(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "local disk" in next(c for c in run_checks(workspace.settings.home)[1] if c.name == "artifact store").detail
    monkeypatch.setenv("MEDOPS_ARTIFACT_ROOT", "memory://doctor-check")
    check = next(c for c in run_checks(workspace.settings.home)[1] if c.name == "artifact store")
    assert check.status == WARN and "gone when the process ends" in check.detail


def test_schema_behind(workspace: Workspace) -> None:
    from sqlalchemy import text

    with workspace.db.write() as session:
        session.execute(text("DELETE FROM alembic_version"))
    status, fix = _by_name(workspace.settings.home)["schema"]
    assert status == FAIL and "medops db upgrade" in fix


def test_missing_pseudonym_key_is_a_warning(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _by_name(workspace.settings.home)["pseudonym key"][0] == OK
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY_FILE", str(tmp_path / "absent.key"))
    status, fix = _by_name(workspace.settings.home)["pseudonym key"]
    assert status == WARN and "token_urlsafe" in fix
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", "short")  # a key that is there but unsafe is a failure
    assert _by_name(workspace.settings.home)["pseudonym key"][0] == FAIL


def test_a_weak_or_exposed_pseudonym_key_fails(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", "a" * 32)
    status, fix = _by_name(workspace.settings.home)["pseudonym key"]
    assert status == FAIL and "token_urlsafe" in fix
    monkeypatch.delenv("MEDOPS_PSEUDONYM_KEY")
    key_file = Path(workspace.settings.pseudonym_key_file)
    key_file.chmod(0o644)
    status, fix = _by_name(workspace.settings.home)["pseudonym key"]
    assert status == FAIL and fix == f"run: chmod 600 {key_file}"


def test_a_database_or_key_readable_by_others_fails_with_the_chmod_to_run(tmp_path: Path) -> None:
    """A medops.db made 0644 (by an older medops) let every local user read the password hashes and the trail."""
    workspace = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="A", admin_password=PASSWORD)
    workspace.close()
    home = workspace.settings.home
    assert _by_name(home)["file permissions"][0] == OK
    db = home / "medops.db"
    signing = Path(workspace.settings.signing_key_file)
    db.chmod(0o644)
    signing.chmod(0o640)
    status, fix = _by_name(home)["file permissions"]
    assert status == FAIL and fix.startswith("run: chmod 600 ") and str(db) in fix and str(signing) in fix
    cache = Path(workspace.settings.artifact_cache)
    cache.mkdir(mode=0o755, exist_ok=True)
    cache.chmod(0o755)
    assert f"chmod 700 {cache}" in _by_name(home)["file permissions"][1]


def test_the_checkpoint_store_and_an_emptied_one(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:

    status, detail = next(
        (c.status, c.detail) for c in run_checks(workspace.settings.home)[1] if c.name == "audit trail"
    )
    assert status == OK and "checkpoints up to event" in detail
    monkeypatch.setenv("MEDOPS_CHECKPOINT_STORE", str(workspace.settings.home / "checkpoints"))
    checks = {c.name: c for c in run_checks(workspace.settings.home)[1]}
    assert checks["checkpoint store"].status == WARN and "inside the workspace" in checks["checkpoint store"].detail
    assert checks["audit trail"].status == FAIL and "holds no checkpoint" in checks["audit trail"].detail
    monkeypatch.delenv("MEDOPS_CHECKPOINT_STORE")
    remove_checkpoint_store(workspace)
    assert _by_name(workspace.settings.home)["audit trail"][0] == FAIL
