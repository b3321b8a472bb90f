"""Database triggers that refuse UPDATE and DELETE (and TRUNCATE) on history tables.

Used by migrations: the audit trail, signatures, dataset versions and lineage are never
rewritten, whoever connects and whatever client they use.
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION medops_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'medops: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def create_triggers(tables: Iterable[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION medops_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION medops_refuse_change()"
            )
        return
    for table in tables:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'medops: {verb} on {table} refused: the table is append-only'); END"
            )
