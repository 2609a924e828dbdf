"""The metadata database: a real PostgreSQL, embedded via pgserver unless MM_POSTGRES_DSN is set.

Its schema changes only through the numbered Alembic migrations in `migrations/versions/`. The embedded database
upgrades itself on first connect; a configured server must be upgraded as a deploy step (`mm db upgrade`), so code
never changes a production schema by surprise, and refuses to run against a schema it was not written for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from mm_pipelines.config import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Several processes (Dagster step workers, the CLI, replicas) may start at once: one upgrades, the others wait.
UPGRADE_LOCK = 0x6D6D_6462  # "mmdb"
# What a database created before the migrations (tables, no alembic_version) is, once it matches.
PRE_MIGRATION_REVISION = "0001"
_EXPECTED_SCHEMA = "mm_expected_schema"

_embedded_lock = threading.Lock()
_embedded: dict[Path, object] = {}


class MetadataSchemaError(ConfigError):
    """The metadata DB's schema is not the one this code needs; the message says which command fixes it."""


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    message: str


def embedded_dsn(pgdata: Path) -> str:
    """Start (or attach to) the embedded Postgres in `pgdata` and return its DSN."""
    import pgserver

    with _embedded_lock:
        if pgdata not in _embedded:
            pgdata.mkdir(parents=True, exist_ok=True)
            _embedded[pgdata] = pgserver.get_server(pgdata)
        return _embedded[pgdata].get_uri()


def _alembic_config(connection=None):
    """Alembic's configuration built in code: the migrations ship inside the package, no alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def history() -> tuple[Revision, ...]:
    """Every revision, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    return tuple(Revision(s.revision, s.down_revision, s.doc) for s in reversed(list(scripts.walk_revisions())))


def head_revision() -> str:
    return history()[-1].revision


def current_revision(conn: psycopg.Connection) -> str | None:
    """The database's revision; None without an alembic_version table (empty, or created before migrations)."""
    if conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def _has_pre_migration_tables(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "SELECT to_regclass('audit_log') IS NOT NULL OR to_regclass('event_file_loads') IS NOT NULL"
    ).fetchone()[0]


def describe_schema(conn, schema: str) -> set[str]:
    """Every column (type, nullability, default), constraint and index in `schema`, as comparable lines."""
    from sqlalchemy import text

    rows = conn.execute(
        text("""
        SELECT format('column %s.%s %s%s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                      coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = :schema AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relname <> 'alembic_version'
        UNION ALL
        SELECT format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND c.relname <> 'alembic_version'
        UNION ALL
        SELECT format('index %s.%s %s', tablename, indexname, indexdef)
        FROM pg_indexes WHERE schemaname = :schema AND tablename <> 'alembic_version'
    """),
        {"schema": schema},
    )
    return {line.replace(f"{schema}.", "") for (line,) in rows}


def _check_pre_migration_schema(conn) -> None:
    """Refuse to stamp a database whose tables differ from what revision 0001 builds (in a scratch schema, undone)."""
    from alembic import command
    from sqlalchemy import text

    schema = conn.execute(text("SELECT current_schema()")).scalar()
    found = describe_schema(conn, schema)
    scratch = conn.begin_nested()
    conn.execute(text(f"CREATE SCHEMA {_EXPECTED_SCHEMA}"))
    conn.execute(text(f"SET LOCAL search_path TO {_EXPECTED_SCHEMA}"))
    command.upgrade(_alembic_config(conn), PRE_MIGRATION_REVISION)
    expected = describe_schema(conn, _EXPECTED_SCHEMA)
    scratch.rollback()
    differences = [f"missing {line}" for line in sorted(expected - found)] + [
        f"unexpected {line}" for line in sorted(found - expected)
    ]
    if differences:
        raise MetadataSchemaError(
            f"metadata DB has tables but no migration revision, and they differ from revision {PRE_MIGRATION_REVISION} "
            f"({len(differences)} differences, first: {differences[0]}): make the schema match revision "
            f"{PRE_MIGRATION_REVISION} by hand, then run `mm db upgrade`"
        )


def upgrade(dsn: str, target: str = "head") -> tuple[str | None, str]:
    """Upgrade to `target` (default head) under an advisory lock, in one transaction; (revision before, after).

    A database created before the migrations is checked against revision 0001 and stamped with it first."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, connect_timeout=10), poolclass=NullPool
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            if before is None and _has_pre_migration_tables(conn.connection.driver_connection):
                _check_pre_migration_schema(conn)
                command.stamp(_alembic_config(conn), PRE_MIGRATION_REVISION)
            command.upgrade(_alembic_config(conn), target)
            return before, MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def require_head(conn: psycopg.Connection) -> None:
    """Raise the one-line error that says how to bring the database to this code's revision."""
    current, head = current_revision(conn), head_revision()
    if current == head:
        return
    known = [r.revision for r in history()]
    if current is not None and current not in known:
        raise MetadataSchemaError(
            f"metadata DB is at revision {current}, which this code does not know (its newest is {head}): "
            "run the release that migrated it, or `mm db history` to see what this one has"
        )
    shown = current or ("none, created before migrations" if _has_pre_migration_tables(conn) else "none, empty")
    raise MetadataSchemaError(f"metadata DB is at revision {shown}, this code needs {head}: run `mm db upgrade`")


class MetadataDB:
    def __init__(self, dsn: str | None, embedded_dir: Path):
        self._dsn = dsn
        self.embedded_dir = embedded_dir
        self._schema_checked = False

    @property
    def dsn(self) -> str:
        return self._dsn or embedded_dsn(self.embedded_dir)

    @property
    def embedded(self) -> bool:
        return self._dsn is None

    def upgrade(self) -> tuple[str | None, str]:
        return upgrade(self.dsn)

    def revision(self) -> str | None:
        with psycopg.connect(self.dsn, connect_timeout=10) as conn:
            return current_revision(conn)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A connection to a database at head: the embedded one is upgraded, a configured server must already be."""
        with psycopg.connect(self.dsn, connect_timeout=10) as conn:
            if not self._schema_checked:
                current = current_revision(conn)
                conn.rollback()  # no snapshot or lock held while another connection migrates
                if current != head_revision():
                    if self.embedded:
                        self.upgrade()
                    else:
                        require_head(conn)
                        conn.rollback()
                self._schema_checked = True
            yield conn
