"""Authenticated actors: login sessions are short-lived tokens beside the API tokens, and an
admin's password reset makes the user choose a new password before anything else.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 'api' (made by `medops token create`) or 'session' (made by `medops login`)
    op.add_column("api_tokens", sa.Column("kind", sa.String(16), nullable=False, server_default="api"))
    op.add_column("users", sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("kind")
