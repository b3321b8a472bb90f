"""Raw SQL access that bypasses medops, as an intruder with database access would have."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medops.workspace import Workspace


class Tamper:
    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            statement = statement.replace("?", "%s")
        cur = self.conn.execute(statement, params)
        try:
            return list(cur.fetchall())
        except Exception:  # statements without rows
            return []

    def row(self, seq: int) -> tuple[Any, ...]:
        return self.sql(
            "SELECT seq, ts, actor, action, entity_type, entity_id, before, after, reason, prev_hash, hash "
            "FROM audit_events WHERE seq = ?",
            seq,
        )[0]

    def renumber(self, above: int, delta: int) -> None:
        """Shift seq of every event above ``above`` by ``delta`` without tripping the primary key."""
        self.sql("UPDATE audit_events SET seq = -(seq + ?) WHERE seq > ?", delta, above)
        self.sql("UPDATE audit_events SET seq = -seq WHERE seq < 0")


@contextmanager
def tampering(ws: Workspace) -> Iterator[Tamper]:
    """Open a raw connection with the append-only triggers out of the way."""
    url = ws.db.url
    if ws.db.dialect == "sqlite":
        conn = sqlite3.connect(url.split("sqlite:///", 1)[1], isolation_level=None)
        for table in ("audit_events", "signatures"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        try:
            yield Tamper(conn, "sqlite")
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # superuser: triggers off
            yield Tamper(conn, "postgresql")
