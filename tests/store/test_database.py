"""The metadata database: schema versions, unreachable servers, one schema for both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from medops.errors import DatabaseUnreachable, SchemaVersionError
from medops.store import Database, head_revision, migrate, require_current, status, upgrade
from medops.store.schema import AuditEvent, Base
from medops.workspace import Workspace


def test_migrations_build_exactly_the_models(metadata_url: str) -> None:
    db = Database(metadata_url)
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []


def test_upgrade_is_idempotent(metadata_url: str) -> None:
    db = Database(metadata_url)
    assert upgrade(db) == (None, head_revision()) and head_revision() == migrate.HEAD_REVISION
    assert upgrade(db) == (head_revision(), head_revision())
    require_current(db)
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_newer_schema_is_refused_and_nothing_changes(workspace: Workspace) -> None:
    with workspace.db.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(SchemaVersionError, match="newer than this medops"):
        upgrade(workspace.db)
    with pytest.raises(SchemaVersionError, match="newer than this medops"):
        Workspace.open(workspace.settings.home)
    state = status(workspace.db)
    assert state.current == "9999_from_the_future" and not state.known
    with workspace.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_older_schema_asks_for_an_upgrade(metadata_url: str) -> None:
    db = Database(metadata_url)
    with pytest.raises(SchemaVersionError, match="no medops schema"):
        require_current(db)
    db.dispose()


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:1/nothing", "postgresql://nobody@256.0.0.1:5432/x"],
)
def test_unreachable_database_is_a_clear_error(url: str) -> None:
    db = Database(url)
    with pytest.raises(DatabaseUnreachable, match="can't reach the metadata database") as info:
        db.ping()
    assert info.value.hint and "metadata_url" in info.value.hint


def test_sqlite_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    with pytest.raises(DatabaseUnreachable):
        db.ping()


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    db = Database(f"sqlite:///{bad}")
    with pytest.raises(Exception) as info:
        status(db)
    assert "not a database" in str(info.value)
    assert bad.read_bytes() == b"this is not sqlite" * 100  # untouched
