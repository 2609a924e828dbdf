"""The metadata database: a real PostgreSQL, embedded via pgserver unless MM_POSTGRES_DSN is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from mm_pipelines.royalties.store import SCHEMA as ROYALTY_SCHEMA

# Applied on every connect; each statement is idempotent so any process may run them.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS event_file_loads (
        sha256 text PRIMARY KEY,
        file_name text NOT NULL,
        topic text NOT NULL,
        lines integer NOT NULL,
        produced integer NOT NULL,
        quarantined integer NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
    )""",
    *ROYALTY_SCHEMA,
]

_embedded_lock = threading.Lock()
_embedded: dict[Path, object] = {}


def embedded_dsn(pgdata: Path) -> str:
    """Start (or attach to) the embedded Postgres in `pgdata` and return its DSN."""
    import pgserver

    with _embedded_lock:
        if pgdata not in _embedded:
            pgdata.mkdir(parents=True, exist_ok=True)
            _embedded[pgdata] = pgserver.get_server(pgdata)
        return _embedded[pgdata].get_uri()


class MetadataDB:
    def __init__(self, dsn: str | None, embedded_dir: Path):
        self._dsn = dsn
        self.embedded_dir = embedded_dir
        self._migrated = False

    @property
    def dsn(self) -> str:
        return self._dsn or embedded_dsn(self.embedded_dir)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.dsn, connect_timeout=10) as conn:
            if not self._migrated:
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.commit()
                self._migrated = True
            yield conn
