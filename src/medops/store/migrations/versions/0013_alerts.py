"""Monitoring alerts (one unresolved per rule and model) and their deliveries (append-only).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from medops.store.append_only import create_triggers
from medops.store.schema import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("breaches", sa.Text(), nullable=False),
        sa.Column("window_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("acknowledged_reason", sa.Text(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolved_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index(
        "uq_alerts_unresolved",
        "alerts",
        ["model", "rule"],
        unique=True,
        sqlite_where=sa.text("state != 'resolved'"),
        postgresql_where=sa.text("state != 'resolved'"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_alert_deliveries_alert_id_alerts"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    create_triggers(["alert_deliveries"])
    _alerts_kept()


# What an alert said when it opened is fixed; only its state and who moved it change; it is never deleted.
_FIXED = "id, model, version, rule, severity, condition, breaches, window_id, opened_at, opened_by"


def _alerts_kept() -> None:
    if op.get_bind().dialect.name == "postgresql":  # the function came with the first append-only table
        op.execute(
            f"CREATE TRIGGER alerts_fixed BEFORE UPDATE OF {_FIXED} ON alerts "
            "FOR EACH ROW EXECUTE FUNCTION medops_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER alerts_kept BEFORE DELETE ON alerts FOR EACH ROW EXECUTE FUNCTION medops_refuse_change()"
        )
        return
    op.execute(
        f"CREATE TRIGGER alerts_fixed BEFORE UPDATE OF {_FIXED} ON alerts "
        "BEGIN SELECT RAISE(ABORT, 'medops: an alert is fixed but for its state'); END"
    )
    op.execute(
        "CREATE TRIGGER alerts_kept BEFORE DELETE ON alerts "
        "BEGIN SELECT RAISE(ABORT, 'medops: an alert is never deleted'); END"
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
