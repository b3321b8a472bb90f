"""The metadata schema: one SQLAlchemy model set for SQLite and PostgreSQL.

Alembic migrations under store/migrations create these tables; a change here needs a
new migration (tests compare the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and hands them back aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: medops stores UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # set by an admin's reset: the user logs in again only after choosing a new password
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class ExternalIdentity(Base):
    """A person's account at an identity provider (its issuer and ``sub``), pinned to one medops user at the
    first login through it: a name claim the provider lets people edit then can't reach another user."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("issuer", "user_id", name="uq_external_identities_issuer"),)

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="api", server_default="api")  # 'api' or 'session'


class AuditEvent(Base):
    """One link of the hash chain. Text columns hold exactly what was hashed."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[str | None] = mapped_column(Text, nullable=True)
    after: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of a governed entity's state right after the event (medops.audit.state); None for
    # other entities and for events written before state hashing.
    state: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # Each filter's index ends with seq: "newest 200 of one actor" walks the index backwards and stops,
    # where an index on the column alone made the database read and sort all of that actor's events.
    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id", "seq"),
        Index("ix_audit_events_type", "entity_type", "seq"),
        Index("ix_audit_events_actor", "actor", "seq"),
        Index("ix_audit_events_action", "action", "seq"),
        Index("ix_audit_events_ts", "ts"),
    )


class SigningKey(Base):
    """Public halves of workspace signing keys; the private half never enters the database."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Signature(Base):
    __tablename__ = "signatures"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    printed_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(200))
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(200))
    record_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    value: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("ix_signatures_record", "record_type", "record_id"),)


class DatasetVersion(Base):
    """An immutable dataset: its version is the SHA-256 of its Parquet artifact."""

    __tablename__ = "dataset_versions"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger)
    column_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    contract_result: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(64))


class DatasetHead(Base):
    """The current version of a dataset: the last ingested, or the one pinned (``how``: ingest or use)."""

    __tablename__ = "dataset_heads"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    how: Mapped[str] = mapped_column(String(16))


class LineageEdge(Base):
    """``src`` fed ``dst``; nodes are typed ids such as ``file:<sha256>`` or ``dataset:<name>@<version>``."""

    __tablename__ = "lineage_edges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    src: Mapped[str] = mapped_column(String(300), index=True)
    dst: Mapped[str] = mapped_column(String(300), index=True)
    relation: Mapped[str] = mapped_column(String(32))
    attrs: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("src", "dst", "relation", name="uq_lineage_edges_src"),)


class FeatureViewVersion(Base):
    """A feature view as applied: its definition, source dataset version and offline table."""

    __tablename__ = "feature_view_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(128))
    source_version: Mapped[str] = mapped_column(String(64))
    table_digest: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    definition: Mapped[str] = mapped_column(Text)
    stats: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(64))


class Run(Base):
    """A training (or tuning) run: who, where, from what, in which state."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    project_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    env_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RunParam(Base):
    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_run_tags_key_value", "key", "value"),)


class RunMetric(Base):
    """Every logged value of a metric, by step (history)."""

    __tablename__ = "run_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunLatestMetric(Base):
    """The last value of each metric of a run: what lists, filters and comparisons read."""

    __tablename__ = "run_latest_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_run_latest_metrics_key_value", "key", "value"),)


class RunInput(Base):
    """What a run read: a dataset, feature view or training set version."""

    __tablename__ = "run_inputs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))


class RunArtifact(Base):
    """A file a run produced, stored content-addressed in the artifact store."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(300), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class Evaluation(Base):
    """A clinical validation of a run's model against the project's policy: stored, never changed."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    champion_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    governing: Mapped[bool] = mapped_column(Boolean, server_default=false())  # under the workspace's policy
    project_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document: Mapped[str] = mapped_column(String(64))  # digests in the artifact store
    report: Mapped[str] = mapped_column(String(64))
    card_markdown: Mapped[str] = mapped_column(String(64))
    card_html: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(64))


class GateResult(Base):
    """One criterion of an evaluation: its value, threshold, outcome and why."""

    __tablename__ = "evaluation_gates"

    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    criterion: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[str | None] = mapped_column(Text, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    why: Mapped[str] = mapped_column(Text)


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ModelVersion(Base):
    """A registered version: immutable but for its stage, which only the registry service moves."""

    __tablename__ = "model_versions"

    model: Mapped[str] = mapped_column(ForeignKey("registered_models.name"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True, nullable=True)  # None: imported
    artifact_sha256: Mapped[str] = mapped_column(String(64))  # the bundle: what approvals are bound to
    origin: Mapped[str | None] = mapped_column(Text, nullable=True)  # an imported bundle's manifest (JSON)
    tags: Mapped[str] = mapped_column(Text, default="{}")  # JSON, fixed at registration
    evaluation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    required_approvals: Mapped[str] = mapped_column(Text)  # JSON list of roles
    stage: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # One production version per model, whatever the code does: the database refuses a second.
        Index(
            "uq_model_versions_production",
            "model",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
    )


class ModelAlias(Base):
    """Which version holds a free alias (champion, challenger) now."""

    __tablename__ = "model_aliases"

    model: Mapped[str] = mapped_column(ForeignKey("registered_models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class ModelTransition(Base):
    """Every move of a stage or alias, in order: the history that answers "which version, when, who, why"."""

    __tablename__ = "model_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(ForeignKey("registered_models.name"), index=True)
    name: Mapped[str] = mapped_column(String(64))  # a stage (staging, production, archived) or an alias
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the alias was removed
    previous: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Approval(Base):
    """A signed decision on a version for one required role: approved or rejected (with the reason)."""

    __tablename__ = "model_approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    signature_id: Mapped[str] = mapped_column(ForeignKey("signatures.id"))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_model_approvals_version", "model", "version"),)


class TrustedBundleKey(Base):
    """Another workspace's public key whose signed bundles this workspace imports (an admin's decision)."""

    __tablename__ = "trusted_bundle_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    trusted_by: Mapped[str] = mapped_column(String(64))
    trusted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Prediction(Base):
    """One answer a served model gave, as the prediction log keeps it (append-only).

    ``inputs`` is the row the model scored (its features; any identifier only as a pseudonym),
    ``output`` what the caller received (or, for a shadow, what it would have received).
    """

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(16))  # champion, canary or shadow
    request_id: Mapped[str] = mapped_column(String(32))
    caller: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(128), nullable=True)  # a pseudonym, never a raw id
    inputs: Mapped[str] = mapped_column(Text)  # JSON
    output: Mapped[str] = mapped_column(Text)  # JSON
    explanation: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    latency_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_predictions_at", "at"),
        Index("ix_predictions_model_at", "model", "at"),
        Index("ix_predictions_entity", "entity"),
    )


class ReferenceProfileRow(Base):
    """The reference profile of a registered version (medops.monitoring.profile): written once, never changed."""

    __tablename__ = "reference_profiles"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(String(64))  # the profile's JSON in the artifact store
    evaluation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rows: Mapped[int] = mapped_column(Integer)  # training rows profiled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class MonitorWindow(Base):
    """One monitored window of one model version: its verdicts, append-only (a rerun adds a row)."""

    __tablename__ = "monitor_windows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(256))  # "predictions", or the batch prediction set's node
    label: Mapped[str] = mapped_column(String(64))  # the window as a user names it: 2026-11, 2026-11-02+7d
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)  # exclusive
    rows: Mapped[int] = mapped_column(Integer)
    judged: Mapped[bool] = mapped_column(Boolean)
    drifted: Mapped[str] = mapped_column(Text)  # JSON list of the features judged drifted
    metrics: Mapped[str] = mapped_column(Text)  # JSON: the flat metrics alert rules read
    document: Mapped[str] = mapped_column(String(64))  # the whole window document in the artifact store
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_monitor_windows_model_start", "model", "start"),)


class Alert(Base):
    """An alert raised by a rule on a model's windows: open, then acknowledged, then resolved, each move by a
    user with a reason and audited. At most one alert per rule and model is not resolved (the index says so)."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    condition: Mapped[str] = mapped_column(Text)  # the rule as it read when it fired
    breaches: Mapped[str] = mapped_column(Text)  # JSON: the metrics that crossed, per window
    window_id: Mapped[str] = mapped_column(String(32))  # the window that raised it
    state: Mapped[str] = mapped_column(String(16))  # open, acknowledged, resolved
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(
            "uq_alerts_unresolved",
            "model",
            "rule",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
    )


class AlertDelivery(Base):
    """One attempt series to tell a channel about an alert (append-only)."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    delivered: Mapped[bool] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)  # the last status or error, never the payload
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class PipelineRun(Base):
    """One `medops run` of a project's pipeline: who, from which file, why, and how it ended."""

    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    project_sha256: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(128))  # manual, schedule:NAME, alert:ID, retrain
    requested: Mapped[str] = mapped_column(Text)  # JSON: the steps asked for, --from, --force
    state: Mapped[str] = mapped_column(String(16), index=True)  # running, finished, stopped, failed, interrupted
    resumes: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the unfinished run it takes up
    created_by: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class PipelineStep(Base):
    """One step of a pipeline run: its cache key and inputs, why it ran or was skipped, what it made."""

    __tablename__ = "pipeline_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    project: Mapped[str] = mapped_column(String(128))
    step: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    inputs: Mapped[str] = mapped_column(Text)  # JSON: what the key was computed from
    state: Mapped[str] = mapped_column(String(16))  # running, done, skipped, failed, stopped, interrupted
    note: Mapped[str] = mapped_column(Text)  # why it ran, or why not
    outputs: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: what it made (refs)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_pipeline_steps_project_step", "project", "step", "state"),)


class Lease(Base):
    """A named lease (one pipeline run per project, one scheduler per workspace): held until it expires."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))  # host:pid:nonce
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduleFire(Base):
    """One due time of a schedule, claimed once: the unique key is what stops a second scheduler's run."""

    __tablename__ = "schedule_fires"

    project: Mapped[str] = mapped_column(String(128), primary_key=True)
    schedule: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200))  # the scheduler's host:pid
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)  # the run's state, or why it did not start
