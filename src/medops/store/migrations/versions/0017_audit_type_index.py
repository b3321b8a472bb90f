"""The newest event of one entity type is one index read: a script's runs and the prediction API remember a
checked credential while no user or token event is newer than the check.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_type", "audit_events", ["entity_type", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_type", table_name="audit_events")
