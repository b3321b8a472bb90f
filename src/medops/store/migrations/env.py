"""Alembic environment: medops always hands in an open connection (see store.migrate)."""

from alembic import context

from medops.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
context.run_migrations()
