"""Storage: the metadata database (SQLAlchemy, Alembic) and the artifact store (fsspec)."""

from medops.store.artifacts import ArtifactStore, VerifyReport
from medops.store.database import Database
from medops.store.migrate import SchemaStatus, head_revision, require_current, status, upgrade

__all__ = [
    "ArtifactStore",
    "Database",
    "SchemaStatus",
    "VerifyReport",
    "head_revision",
    "require_current",
    "status",
    "upgrade",
]
