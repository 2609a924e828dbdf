"""The metadata DB's Alembic migrations on a real PostgreSQL: from empty, from the schema the code built before
migrations, twice, and from two processes at once; the SQLAlchemy tables must match what the migrations build."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pgserver
import psycopg
import pytest

from mm_pipelines.stores.metadata_tables import metadata
from mm_pipelines.stores.postgres import (
    PRE_MIGRATION_REVISION,
    MetadataDB,
    MetadataSchemaError,
    current_revision,
    describe_schema,
    head_revision,
    upgrade,
)
from tests.conftest import drop_database, dsn_url, fresh_database

pytestmark = pytest.mark.integration

BEFORE_ALEMBIC = Path(__file__).parent / "data" / "metadata_schema_before_alembic.sql"
PG_DUMP = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"  # the wheel ships the Postgres binaries


@pytest.fixture
def empty_dsn(postgres_server_dsn):
    dsn = fresh_database(postgres_server_dsn)
    yield dsn
    drop_database(postgres_server_dsn, dsn)


@pytest.fixture
def pre_migration_dsn(empty_dsn):
    """A database as the code before migrations left it: its pg_dump, with a row in it."""
    with psycopg.connect(empty_dsn) as conn:
        conn.execute(BEFORE_ALEMBIC.read_text())
    with psycopg.connect(empty_dsn) as conn:  # the dump empties search_path for its session
        conn.execute("INSERT INTO creators VALUES ('cr-1', 'Ada')")
    return empty_dsn


@contextmanager
def engine(dsn: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    e = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool)
    try:
        yield e
    finally:
        e.dispose()


def schema_differences(dsn: str) -> list:
    """What autogenerate would write to make the database match the SQLAlchemy tables (types and defaults too)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine(dsn) as e, e.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, metadata)


def described(dsn: str) -> set[str]:
    from sqlalchemy import text

    with engine(dsn) as e, e.connect() as conn:
        return describe_schema(conn, conn.execute(text("SELECT current_schema()")).scalar())


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def revision(dsn: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        return current_revision(conn)


def mm(*args: str, dsn: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MM_HOME": str(home), "MM_POSTGRES_DSN": dsn_url(dsn)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "mm"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_an_empty_database_upgrades_to_head_with_every_table(empty_dsn):
    assert upgrade(empty_dsn) == (None, head_revision())
    assert tables(empty_dsn) == set(metadata.tables) | {"alembic_version"}


def test_the_sqlalchemy_tables_match_what_the_migrations_build(empty_dsn, postgres_server_dsn):
    upgrade(empty_dsn)
    assert schema_differences(empty_dsn) == []
    # compare_metadata does not compare an index's WHERE clause: the tables created straight from the metadata
    # must also describe (columns, defaults, constraints, index definitions) exactly as the migrated ones.
    from_metadata = fresh_database(postgres_server_dsn)
    try:
        with engine(from_metadata) as e:
            metadata.create_all(e)
        assert described(from_metadata) == described(empty_dsn)
    finally:
        drop_database(postgres_server_dsn, from_metadata)


def test_revision_0001_builds_exactly_the_schema_the_code_built_before_migrations(empty_dsn):
    """Column order, types, defaults, constraint and index names: the whole pg_dump is the same."""
    upgrade(empty_dsn, PRE_MIGRATION_REVISION)
    dump = subprocess.run(
        [
            str(PG_DUMP),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=alembic_version",
            "-d",
            empty_dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert without_versions(dump) == without_versions(BEFORE_ALEMBIC.read_text())


def without_versions(dump: str) -> list[str]:
    """The dump's lines without the "Dumped from/by version" header, which names the server that made it."""
    return [line for line in dump.splitlines() if not line.startswith("-- Dumped ")]


def test_a_database_from_before_migrations_is_stamped_and_upgraded_keeping_its_rows(pre_migration_dsn):
    assert upgrade(pre_migration_dsn) == (None, head_revision())
    assert revision(pre_migration_dsn) == head_revision()
    assert schema_differences(pre_migration_dsn) == []
    with psycopg.connect(pre_migration_dsn) as conn:
        assert conn.execute("SELECT creator_id, name FROM creators").fetchall() == [("cr-1", "Ada")]
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'mm_expected_schema'").fetchone() == (0,)


def test_a_database_from_before_migrations_that_differs_is_refused_and_left_alone(pre_migration_dsn):
    with psycopg.connect(pre_migration_dsn) as conn:
        conn.execute("ALTER TABLE payout_batches DROP COLUMN execution_date")
    with pytest.raises(
        MetadataSchemaError,
        match=r"differ from revision 0001 \(1 differences, first: missing column payout_batches.execution_date date\)",
    ):
        upgrade(pre_migration_dsn)
    assert "alembic_version" not in tables(pre_migration_dsn)


def test_mm_db_upgrade_twice_is_idempotent(empty_dsn, tmp_path):
    first = mm("db", "upgrade", dsn=empty_dsn, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from revision none to {head_revision()} (head)" in first.stdout
    second = mm("db", "upgrade", dsn=empty_dsn, home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"already at revision {head_revision()} (head)" in second.stdout
    assert schema_differences(empty_dsn) == []
    current = mm("db", "current", dsn=empty_dsn, home=tmp_path)
    assert f"revision {head_revision()}, this code needs {head_revision()}: up to date" in current.stdout
    history = mm("db", "history", dsn=empty_dsn, home=tmp_path)
    assert "0001" in history.stdout and "← current" in history.stdout


def test_two_processes_upgrading_at_once_both_succeed(empty_dsn):
    code = "import sys; from mm_pipelines.stores.postgres import upgrade; print(upgrade(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [rc for _, _, rc in results] == [0, 0], [err for _, err, _ in results]
    # One created the schema, the other waited on the lock and found it done.
    assert sorted(out.strip() for out, _, _ in results) == sorted(
        [f"(None, '{head_revision()}')", f"('{head_revision()}', '{head_revision()}')"]
    )
    assert schema_differences(empty_dsn) == []


def test_a_configured_server_behind_head_is_refused_with_the_command_that_fixes_it(pre_migration_dsn, tmp_path):
    with pytest.raises(
        MetadataSchemaError,
        match=rf"^metadata DB is at revision none, created before migrations, this code needs {head_revision()}: "
        r"run `mm db upgrade`$",
    ):
        with MetadataDB(pre_migration_dsn, tmp_path / "unused").connect():
            pass
    assert revision(pre_migration_dsn) is None  # a configured server is never migrated by surprise
    shown = mm("db", "current", dsn=pre_migration_dsn, home=tmp_path)
    assert shown.returncode == 0 and "revision none, this code needs" in shown.stdout


def test_an_empty_configured_server_is_refused_too(empty_dsn, tmp_path):
    with pytest.raises(
        MetadataSchemaError, match=r"is at revision none, empty, this code needs .*: run `mm db upgrade`"
    ):
        with MetadataDB(empty_dsn, tmp_path / "unused").connect():
            pass


def test_a_revision_this_code_does_not_know_is_named(empty_dsn, tmp_path):
    upgrade(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MetadataSchemaError, match="at revision 9999, which this code does not know"):
        with MetadataDB(empty_dsn, tmp_path / "unused").connect():
            pass


def test_an_unreachable_server_is_one_line(tmp_path):
    shown = mm("db", "current", dsn="host=127.0.0.1 port=1 dbname=mm user=mm", home=tmp_path)
    assert shown.returncode == 1
    assert (
        "cannot reach the metadata DB postgresql://mm@/mm?host=127.0.0.1&port=1" in shown.stderr
        and "Traceback" not in shown.stderr
    )


def test_audit_records_of_earlier_formats_still_verify_beside_the_current_one(empty_dsn):
    import hashlib
    import json
    from datetime import UTC, datetime

    from psycopg.types.json import Jsonb

    from mm_pipelines.audit import chain

    def canonical(value) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    upgrade(empty_dsn, PRE_MIGRATION_REVISION)
    v1 = hashlib.sha256(canonical([chain.GENESIS, "finance", "period.close", "2026-10", {}])).hexdigest()
    with psycopg.connect(empty_dsn) as conn:  # as revision 0001's code hashed a record
        conn.execute(
            "INSERT INTO audit_log (actor, action, subject, details, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s)",
            ("finance", "period.close", "2026-10", Jsonb({}), chain.GENESIS, v1),
        )
    upgrade(empty_dsn)
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    body = {"format": 2, "prev": v1, "at": "2026-12-01T09:30:00.000000+00:00", "actor": "bob", "role": "Editor"}
    body |= {"action": "asset.create", "object": "asset:a1", "details": {}, "before": None, "after": None}
    v2 = hashlib.sha256(canonical(body)).hexdigest()  # as the code of revisions 0002 to 0005 hashed a record
    with psycopg.connect(empty_dsn) as conn:
        conn.execute(
            """INSERT INTO audit_log (at, actor, role, action, subject, details, prev_hash, hash, format)
               VALUES (%s, 'bob', 'Editor', 'asset.create', 'asset:a1', '{}', %s, %s, 2)""",
            (at, v1, v2),
        )
        chain.append(conn, "alice", "payout.approval", "pb_1", {"via": "api"}, role="FinanceApprover")
        assert chain.verify(conn) == (3, [])
        assert [r.format for r in reversed(chain.records(conn))] == [1, 2, 3]
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE format = 1")
        assert "record 1: contents do not match" in chain.verify(conn)[1][0]


def downgrade(dsn: str, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    from mm_pipelines.stores.postgres import MIGRATIONS

    with engine(dsn) as e, e.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, target)


ADA = ("pe-ada", "cr-1", "Ada Lovelace", "verified", "kyc://a", "sepa", "EUR", "DE89370400440532013000", "COBADEFFXXX")
MANUAL = ("pe-man", "cr-1", "Manny Manual", "verified", "kyc://m", "manual", "EUR", "", "")


def test_0006_moves_payee_bank_details_into_the_vault_and_its_downgrade_brings_them_back(
    empty_dsn, postgres_server_dsn, tmp_path, monkeypatch
):
    from decimal import Decimal

    from mm_pipelines.config import Settings
    from mm_pipelines.royalties import bank_details
    from mm_pipelines.stores.pii import digest

    monkeypatch.setenv("MM_HOME", str(tmp_path / "mm"))  # the vault the migration moves the values into
    upgrade(empty_dsn, "0005")
    before = [(*ADA, Decimal("10"), Decimal("0.15")), (*MANUAL, Decimal(0), Decimal(0))]
    with psycopg.connect(empty_dsn) as conn:
        conn.execute("INSERT INTO creators VALUES ('cr-1', 'Ada')")
        conn.cursor().executemany("INSERT INTO payees VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", before)
        conn.execute("INSERT INTO kyc_checks (payee_id, status) VALUES ('pe-ada', 'verified')")
        conn.execute(
            "INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by) "
            "VALUES ('PB-1', '2026-10', 'EUR', 10, 1, 'draft', 'dagster')"
        )
        conn.execute(
            "INSERT INTO payout_lines (line_id, batch_id, payee_id, amount, currency) "
            "VALUES ('2026-10:pe-ada:EUR', 'PB-1', 'pe-ada', 10, 'EUR')"
        )
    assert upgrade(empty_dsn) == ("0005", head_revision())
    assert schema_differences(empty_dsn) == []
    settings = Settings.from_env()
    vault, key = bank_details.vault(settings), bank_details.digest_key(settings)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT payee_id, pii_ref, bank_hint FROM payees ORDER BY payee_id").fetchall() == [
            ("pe-ada", "payees/pe-ada#1", "DE…3000"),
            ("pe-man", "payees/pe-man#1", ""),
        ]
        assert conn.execute("SELECT pii_ref FROM payout_lines").fetchall() == [("payees/pe-ada#1",)]
        digests = dict(conn.execute("SELECT payee_id, pii_digest FROM payees"))
        conn.execute("CHECKPOINT")  # what the table's files hold, not only what SQL shows: the old rows are gone too
        files = conn.execute(
            "SELECT pg_read_binary_file(pg_relation_filepath('payees')) || "
            "pg_read_binary_file(pg_relation_filepath(reltoastrelid)) FROM pg_class WHERE relname = 'payees'"
        ).fetchone()[0]
    assert vault.get("payees/pe-ada#1") == {"name": ADA[2], "iban": ADA[7], "bic": ADA[8]}
    assert vault.get("payees/pe-man#1") == {"name": MANUAL[2], "iban": "", "bic": ""}
    assert digests["pe-ada"] == digest(key, "payees/pe-ada", vault.get("payees/pe-ada#1"))
    for value in (b"Ada Lovelace", b"DE89370400440532013000", b"COBADEFFXXX", b"Manny Manual"):
        assert value not in files

    downgrade(empty_dsn, "0005")
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT * FROM payees ORDER BY payee_id").fetchall() == before  # columns in 0005's order
        assert conn.execute("SELECT payee_id FROM kyc_checks").fetchall() == [("pe-ada",)]
    at_0005 = fresh_database(postgres_server_dsn)
    try:
        upgrade(at_0005, "0005")
        assert described(empty_dsn) == described(at_0005)
    finally:
        drop_database(postgres_server_dsn, at_0005)
