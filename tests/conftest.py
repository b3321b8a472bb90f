"""Shared fixtures: every metadata test runs on SQLite and on PostgreSQL.

PostgreSQL: each test run (each xdist worker) gets its own database, created here and
dropped at the end; each test starts from an empty schema. Without a reachable server
the PostgreSQL cases skip with the reason, unless CI=true, where they fail. A test that
needs PostgreSQL or Redis carries the `postgres` / `redis` marker (see
pytest_collection_modifyitems), so `-m "not postgres and not redis"` runs the rest.
Helpers that are not fixtures live in tests/factories.py; test modules never import from
one another.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from medops.identity import Role
from medops.identity.keys import ENV_KEY
from medops.identity.pseudonym_key import KEY_ENV as PSEUDONYM_KEY_ENV
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD, POSTGRES, PSEUDONYM_KEY, DemoRun, Platform, start_serve

if TYPE_CHECKING:
    from medops.demo import DemoResult

PG_ADMIN_URL = os.environ.get("MEDOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDOPS_TEST_REDIS", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_missing(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({type(exc).__name__}: {exc}); start it to run these tests"
    if IN_CI:
        pytest.fail(f"CI=true requires {message}")
    pytest.skip(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/golden/*.json from the current CLI output (only for a shape changed on purpose)",
    )


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks follow the fixtures: a test that needs a server carries its marker (the backend
    parameters of metadata_url and the online-store fixtures carry theirs); tests on the demo
    are slow."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_database" in names:
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)
        if "demo_run" in names:
            item.add_marker(pytest.mark.slow)


def _without_medops_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MEDOPS_") and name not in ("MEDOPS_TEST_PG", "MEDOPS_TEST_REDIS"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at its lowest cost: the same algorithm, hashes and checks, without a second or
    more of CPU per workspace (every user added and every signature hashes). Hashes made by
    subprocesses keep the real cost; argon2 reads a hash's cost from the hash itself."""
    from argon2 import PasswordHasher

    from medops.identity import passwords

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's MEDOPS_* settings or login, or writes keys or sessions into their home."""
    _without_medops_env(monkeypatch)
    monkeypatch.setenv("MEDOPS_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("MEDOPS_SESSION_DIR", str(tmp_path / "sessions"))


@pytest.fixture(scope="session")
def demo_run(demo: DemoResult) -> DemoRun:
    """The session's one demo, with the folder it ran in (tests only read it)."""
    return DemoRun(demo.home.parent, demo)


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


@pytest.fixture(params=["sqlite", POSTGRES])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata URL for this test: a fresh SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("pg_database")
    reset_pg(url)
    return url


class Templates:
    """States that take seconds to build, built once per test process and backend, then copied for
    each test that asks: the folder file by file, a PostgreSQL database from a template database.

    A copy is the same state as a fresh build (the same workspace id, keys, rows and audit chain),
    in the test's own folder and database, so tests still never see one another's changes. A
    builder gets an empty folder (its MEDOPS_KEY_DIR is ``keys`` inside it) and a metadata URL
    (None: SQLite inside the workspace), builds there, closes what it opened and returns a value
    the copies share (a run id, say).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[tuple[str, ...], tuple[Path, str | None, object]] = {}

    def copy(
        self,
        name: str,
        metadata_url: str,
        tmp_path: Path,
        build: Callable[[Path, str | None], object],
    ) -> object:
        backend = "sqlite" if metadata_url.startswith("sqlite") else "postgresql"
        # a key given in the environment is not written to a key file: a different state
        keys = tuple(os.environ.get(name, "") for name in (ENV_KEY, PSEUDONYM_KEY_ENV))
        key = (name, backend, *keys)
        if key not in self.built:
            self.built[key] = self._build(f"{name}{len(self.built)}", backend, metadata_url, build)
        folder, template_url, value = self.built[key]
        shutil.copytree(folder, tmp_path, dirs_exist_ok=True, symlinks=True)
        if template_url is not None:
            _clone_database(template_url, metadata_url)
            for settings in tmp_path.glob("*/medops.toml"):
                settings.write_text(settings.read_text().replace(template_url, metadata_url))
        return value

    def _build(
        self, name: str, backend: str, metadata_url: str, build: Callable[[Path, str | None], object]
    ) -> tuple[Path, str | None, object]:
        folder = self.root / f"{name}-{backend}"
        folder.mkdir()
        template_url = None
        if backend == "postgresql":
            template_url = f"{metadata_url}_{name}"
            _admin(f'CREATE DATABASE "{_database(template_url)}"')
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MEDOPS_KEY_DIR", str(folder / "keys"))
            value = build(folder, template_url)
        return folder, template_url, value

    def drop(self) -> None:
        for _, template_url, _ in self.built.values():
            if template_url is not None:
                _admin(f'DROP DATABASE IF EXISTS "{_database(template_url)}" WITH (FORCE)')


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def _clone_database(template_url: str, url: str) -> None:
    """Replace the database at ``url`` by a copy of the template's (no session may hold the template)."""
    _admin(f'DROP DATABASE IF EXISTS "{_database(url)}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{_database(url)}" TEMPLATE "{_database(template_url)}"')


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("templates"))
    yield made
    made.drop()


def _build_workspace(folder: Path, metadata_url: str | None) -> None:
    new_workspace(folder, metadata_url=metadata_url).close()


@pytest.fixture
def workspace(tmp_path: Path, metadata_url: str, templates: Templates) -> Iterator[Workspace]:
    """An initialized workspace with admin 'admin' on the parametrized backend."""
    templates.copy("workspace", metadata_url, tmp_path, _build_workspace)
    ws = Workspace.open(tmp_path / "ws")
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
def pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed pseudonym key in the environment, for tests that ingest data."""
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", PSEUDONYM_KEY)


def _build_registry(folder: Path, metadata_url: str | None) -> str:
    from medops.evaluation.records import record
    from medops.training import Tracker
    from tests.factories import COHORT_FEATURES, LOGISTIC, cohort, evaluate_run, govern, train_run

    ws = add_team(new_workspace(folder, metadata_url=metadata_url))
    try:
        ws.users.add("admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER])
        govern(ws)
        tracker = Tracker(ws)
        run = train_run(tracker, folder, "fair", cohort(2400, biased=False), LOGISTIC, COHORT_FEATURES)
        doc = evaluate_run(tracker, run)
        assert doc["passed"], [g for g in doc["gates"] if not g["passed"]]
        record(ws, doc, "<html></html>", "# card", "<html></html>", actor="victor")
    finally:
        ws.close()
    return run


@pytest.fixture
def registry(
    pseudonym_key: None, metadata_url: str, tmp_path: Path, templates: Templates
) -> Iterator[tuple[Workspace, str]]:
    """The team's workspace with a trained run by alice whose evaluation under the workspace's policy
    passed; ming is an ML engineer."""
    run = templates.copy("registry", metadata_url, tmp_path, _build_registry)
    ws = Workspace.open(tmp_path / "ws")
    yield ws, str(run)
    ws.close()


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


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> DemoResult:
    """The lifecycle demo, run once per test run (it is the slowest thing the suite does); read it, never change it.

    Its folder holds workspace/, project/ (medops.yaml, contracts, raw data), keys/ and reports/.
    A test that changes state works on `demo_copy`. Under xdist the first worker to need it runs
    it in the run's shared temporary folder, under a lock; the others wait for it and read it.
    """
    from medops.demo import DemoResult

    if worker_id == "master":
        return _run_demo(tmp_path_factory.mktemp("demo"))
    shared = tmp_path_factory.getbasetemp().parent  # one folder per test run, common to its workers
    record = shared / "demo.json"
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            done = _run_demo(shared / "demo")
            record.write_text(json.dumps({**done.__dict__, "home": str(done.home)}, default=str))
    doc = json.loads(record.read_text())
    return DemoResult(
        **{
            **doc,
            "home": Path(doc["home"]),
            "steps": [tuple(step) for step in doc["steps"]],
            "reports": [Path(path) for path in doc["reports"]],
        }
    )


def _run_demo(folder: Path) -> DemoResult:
    from medops.demo import run_demo

    with pytest.MonkeyPatch.context() as env:  # session scope: _clean_env has not run yet
        for name in list(os.environ):
            if name.startswith("MEDOPS_") and name not in ("MEDOPS_TEST_PG", "MEDOPS_TEST_REDIS"):
                env.delenv(name)
        return run_demo(folder, artifact_root=(folder / "url-artifacts").as_uri())  # a URL root, not a folder


@pytest.fixture
def demo_copy(demo: DemoResult, tmp_path: Path) -> Path:
    """A private copy of the demo's folder, its settings pointing into the copy; returns the copy's folder."""
    base = demo.home.parent
    copy = tmp_path / "demo"
    shutil.copytree(base, copy)
    settings = copy / "workspace" / "medops.toml"
    settings.write_text(settings.read_text().replace(str(base), str(copy)))
    return copy


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
