"""Audit events carry the hash of the governed entity's state after the change, so an edit of a
governed row in SQL (a role, a stage, a revocation) no longer matches the trail.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: no table copy, so the append-only triggers stay.
    op.add_column("audit_events", sa.Column("state", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_events", "state")
