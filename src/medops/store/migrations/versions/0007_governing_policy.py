"""Evaluations say whether they were made under the workspace's governing policy (only those gate
production) and which project file they came from.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Adding a column rewrites no row, so the append-only triggers on evaluations are not fired.
    # Evaluations made before this revision were never checked against a governing policy: not gating.
    op.add_column("evaluations", sa.Column("governing", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("evaluations", sa.Column("project_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("evaluations", "project_sha256")
    op.drop_column("evaluations", "governing")
