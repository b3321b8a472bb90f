"""Identity-provider accounts pinned to medops users: the first OpenID Connect login of a user links the
provider's subject to them, and later logins must present the same subject.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from medops.store.schema import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_identities",
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_external_identities_user_id_users"),
        sa.PrimaryKeyConstraint("issuer", "subject", name="pk_external_identities"),
        sa.UniqueConstraint("issuer", "user_id", name="uq_external_identities_issuer"),
    )
    op.create_index("ix_external_identities_user_id", "external_identities", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_external_identities_user_id", table_name="external_identities")
    op.drop_table("external_identities")
