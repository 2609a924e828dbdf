"""The metadata DB against a real PostgreSQL server, and the embedded one."""

import pytest

from mm_pipelines.stores.postgres import MetadataDB, head_revision

pytestmark = pytest.mark.integration


def test_rows_round_trip_on_a_server_at_head(postgres_dsn, tmp_path):
    db = MetadataDB(postgres_dsn, tmp_path / "unused")
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO event_file_loads (sha256, file_name, topic, lines, produced, quarantined) "
            "VALUES ('abc', 'f.jsonl', 't', 3, 2, 1)"
        )
    with MetadataDB(postgres_dsn, tmp_path / "unused").connect() as conn:  # a second process would see the same
        assert conn.execute("SELECT file_name, produced, quarantined FROM event_file_loads").fetchall() == [
            ("f.jsonl", 2, 1)
        ]


def test_embedded_postgres_starts_on_demand_and_upgrades_itself_to_head(tmp_path):
    db = MetadataDB(None, tmp_path / "pg")
    with db.connect() as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
        assert conn.execute("SELECT count(*) FROM event_file_loads").fetchone() == (0,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    assert MetadataDB(None, tmp_path / "pg").revision() == head_revision()
