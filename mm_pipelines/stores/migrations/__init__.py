"""The metadata DB's Alembic migrations, numbered 0001, 0002, …; run by `mm db upgrade` (stores.postgres.upgrade)."""
