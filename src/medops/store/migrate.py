"""Schema versions: upgrade with Alembic, and refuse to run on a schema we don't know."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from medops.errors import SchemaVersionError
from medops.store.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest script in migrations/versions (a test holds the two together): opening a
# workspace whose schema is at this revision needs no Alembic import, which takes 0.15 s.
HEAD_REVISION = "0017"


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    known: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def status(db: Database) -> SchemaStatus:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with db.guard(), db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    script = ScriptDirectory.from_config(_config())
    known_revs = {rev.revision for rev in script.walk_revisions()}
    return SchemaStatus(current=current, head=head_revision(), known=current is None or current in known_revs)


def _refuse_unknown(state: SchemaStatus) -> None:
    if not state.known:
        raise SchemaVersionError(
            f"the workspace database has schema revision {state.current!r}, newer than this medops "
            f"(it knows up to {state.head!r})",
            hint="upgrade medops to the version that wrote this workspace; nothing was changed",
        )


def upgrade(db: Database) -> tuple[str | None, str]:
    """Bring the schema to head; returns (from, to). Refuses a schema from a newer medops."""
    state = status(db)
    _refuse_unknown(state)
    if state.up_to_date:
        return state.current, state.head
    from alembic import command

    cfg = _config()
    with db.guard(), db.writer.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return state.current, state.head


def _stamped(db: Database) -> str | None:
    """The schema revision stamped in the database, read without Alembic."""
    with db.guard(), db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(found) if found is not None else None


def require_current(db: Database) -> None:
    """Commands other than init/upgrade/doctor run only on a schema at exactly our head."""
    if _stamped(db) == HEAD_REVISION:
        return
    state = status(db)
    _refuse_unknown(state)
    if state.current is None:
        raise SchemaVersionError("the metadata database has no medops schema", code="schema_missing")
    if not state.up_to_date:
        raise SchemaVersionError(
            f"the workspace schema is at revision {state.current}, this medops needs {state.head}",
            code="schema_outdated",
        )
