"""Alembic environment: runs on the connection that stores.postgres hands over, inside its transaction and lock."""

from __future__ import annotations

from alembic import context

from mm_pipelines.stores.metadata_tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the metadata DB migrations run through `mm db upgrade` (mm_pipelines.stores.postgres.upgrade)")
context.configure(connection=connection, target_metadata=metadata, compare_type=True, compare_server_default=True)
with context.begin_transaction():
    context.run_migrations()
