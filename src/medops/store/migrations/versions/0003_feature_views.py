"""Feature view versions, append-only.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from medops.store.append_only import create_triggers
from medops.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_view_versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("source_version", sa.String(64), nullable=False),
        sa.Column("table_digest", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_feature_view_versions"),
    )
    op.create_index("ix_feature_view_versions_created_at", "feature_view_versions", ["created_at"])
    create_triggers(["feature_view_versions"])


def downgrade() -> None:
    raise RuntimeError("feature view versions are history: they can't be downgraded")
