"""Shared fixtures: every metadata test runs on SQLite and on PostgreSQL.

PostgreSQL: each test run (each xdist worker) gets its own database, created here and
dropped at the end; each test starts from an empty schema. Without a reachable server
the PostgreSQL cases skip with the reason, unless CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.identity import Role
from medops.workspace import Workspace, init_workspace

PG_ADMIN_URL = os.environ.get("MEDOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDOPS_TEST_REDIS", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "test-password-0123"


def server_missing(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({type(exc).__name__}: {exc}); start it to run these tests"
    if IN_CI:
        pytest.fail(f"CI=true requires {message}")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's MEDOPS_* settings or writes keys into their home."""
    for name in list(os.environ):
        if name.startswith("MEDOPS_") and name not in ("MEDOPS_TEST_PG", "MEDOPS_TEST_REDIS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEDOPS_KEY_DIR", str(tmp_path / "keys"))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this run's own; yields its SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg")
    name = f"medops_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        server_missing("PostgreSQL at 127.0.0.1:5432", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_pg(url: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
        conn.execute("DROP FUNCTION IF EXISTS medops_refuse_change() CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata URL for this test: a fresh SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("pg_database")
    reset_pg(url)
    return url


@pytest.fixture
def workspace(tmp_path: Path, metadata_url: str) -> Iterator[Workspace]:
    """An initialized workspace with admin 'admin' on the parametrized backend."""
    ws = new_workspace(tmp_path, metadata_url=None if metadata_url.startswith("sqlite") else metadata_url)
    yield ws
    ws.close()


def new_workspace(tmp_path: Path, *, metadata_url: str | None = None, artifact_root: str | None = None) -> Workspace:
    return init_workspace(
        tmp_path / "ws",
        admin_username="admin",
        admin_full_name="Ada Admin",
        admin_password=PASSWORD,
        metadata_url=metadata_url,
        artifact_root=artifact_root,
    )


def add_team(workspace: Workspace) -> Workspace:
    for name, full, role in [
        ("alice", "Alice Moreau", Role.DATA_SCIENTIST),
        ("victor", "Victor Okafor", Role.VALIDATOR),
        ("carol", "Carol Reyes", Role.CLINICAL_REVIEWER),
    ]:
        workspace.users.add("admin", name, full, PASSWORD, [role])
    return workspace


@pytest.fixture
def team(workspace: Workspace) -> Workspace:
    """The workspace plus alice (data_scientist), victor (validator), carol (clinical_reviewer)."""
    return add_team(workspace)


@pytest.fixture(params=["memory", "file-url"])
def artifact_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An artifact root other than a plain folder: fsspec's in-memory filesystem, or a file:// URL."""
    if request.param == "file-url":
        yield (tmp_path / "url-artifacts").as_uri()
        return
    import fsspec

    root = f"memory://medops-test-{uuid.uuid4().hex}"
    yield root
    memory = fsspec.filesystem("memory")
    if memory.exists(root):
        memory.rm(root, recursive=True)  # the in-memory filesystem lives as long as the test process


@pytest.fixture
def team_on_root(tmp_path: Path, artifact_root: str) -> Iterator[Workspace]:
    """The team's workspace (SQLite) with its artifacts under ``artifact_root``."""
    ws = new_workspace(tmp_path, artifact_root=artifact_root)
    yield add_team(ws)
    ws.close()


@pytest.fixture
def redis_url() -> str:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        server_missing("Redis at 127.0.0.1:6379", exc)
    return REDIS_URL
