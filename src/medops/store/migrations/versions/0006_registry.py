"""The model registry: registered models, versions and their stage, aliases, the transition
history, signed approvals, and the keys of other workspaces whose bundles are trusted.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from medops.store.append_only import create_triggers
from medops.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_registered_models"),
    )
    op.create_table(
        "model_versions",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("evaluation_id", sa.String(32), nullable=True),
        sa.Column("required_approvals", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"], ["registered_models.name"], name="fk_model_versions_model_registered_models"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_versions_run_id_runs"),
        sa.PrimaryKeyConstraint("model", "version", name="pk_model_versions"),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_index(
        "uq_model_versions_production",
        "model_versions",
        ["model"],
        unique=True,
        sqlite_where=sa.text("stage = 'production'"),
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["registered_models.name"], name="fk_model_aliases_model_registered_models"),
        sa.PrimaryKeyConstraint("model", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "model_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model"], ["registered_models.name"], name="fk_model_transitions_model_registered_models"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_transitions"),
    )
    op.create_index("ix_model_transitions_model", "model_transitions", ["model"])
    op.create_index("ix_model_transitions_at", "model_transitions", ["at"])
    op.create_table(
        "model_approvals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("signature_id", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["signature_id"], ["signatures.id"], name="fk_model_approvals_signature_id_signatures"),
        sa.PrimaryKeyConstraint("id", name="pk_model_approvals"),
    )
    op.create_index("ix_model_approvals_version", "model_approvals", ["model", "version"])
    op.create_table(
        "trusted_bundle_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("trusted_by", sa.String(64), nullable=False),
        sa.Column("trusted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_trusted_bundle_keys"),
    )
    create_triggers(["model_transitions", "model_approvals"])  # history and decisions are never rewritten
    _immutable_versions()


# Everything about a version but its stage is fixed at registration; a version is never deleted.
_FIXED = (
    "model, version, run_id, artifact_sha256, origin, tags, evaluation_id, required_approvals, created_by, created_at"
)


def _immutable_versions() -> None:
    if op.get_bind().dialect.name == "postgresql":  # the function comes with the first append-only table
        op.execute(
            f"CREATE TRIGGER model_versions_fixed BEFORE UPDATE OF {_FIXED} ON model_versions "
            "FOR EACH ROW EXECUTE FUNCTION medops_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER model_versions_kept BEFORE DELETE ON model_versions "
            "FOR EACH ROW EXECUTE FUNCTION medops_refuse_change()"
        )
        return
    op.execute(
        f"CREATE TRIGGER model_versions_fixed BEFORE UPDATE OF {_FIXED} ON model_versions "
        "BEGIN SELECT RAISE(ABORT, 'medops: a registered version is immutable but for its stage'); END"
    )
    op.execute(
        "CREATE TRIGGER model_versions_kept BEFORE DELETE ON model_versions "
        "BEGIN SELECT RAISE(ABORT, 'medops: a registered version is never deleted'); END"
    )


def downgrade() -> None:
    raise RuntimeError("the registry's history and approvals are records: they can't be downgraded")
