"""Monitoring: each registered version's reference profile, and every monitored window (both append-only).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from medops.store.append_only import create_triggers
from medops.store.schema import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_profiles",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("evaluation_id", sa.String(32), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("model", "version", name="pk_reference_profiles"),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("judged", sa.Boolean(), nullable=False),
        sa.Column("drifted", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("document", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_windows"),
    )
    op.create_index("ix_monitor_windows_model_start", "monitor_windows", ["model", "start"])
    create_triggers(["reference_profiles", "monitor_windows"])


def downgrade() -> None:
    op.drop_table("monitor_windows")
    op.drop_table("reference_profiles")
