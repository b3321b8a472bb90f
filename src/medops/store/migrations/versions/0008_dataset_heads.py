"""Which version of each dataset is current: the last one ingested (new or identical to an earlier one)
or the one pinned with `medops data use`, so a bad ingest can be undone.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from medops.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_heads",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dataset_heads"),
    )


def downgrade() -> None:
    op.drop_table("dataset_heads")
