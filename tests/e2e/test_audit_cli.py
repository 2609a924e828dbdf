"""`mm audit seal` and `mm audit verify` as a user runs them: the chain sealed into the archive, then a record
edited in Postgres after sealing is reported by both checks, one line per problem, exit 1."""

from __future__ import annotations

import psycopg
import pytest

from mm_pipelines.audit import chain
from tests.conftest import dsn_url

pytestmark = pytest.mark.e2e


def test_seal_then_verify_finds_a_record_edited_after_sealing(mm, postgres_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("MM_POSTGRES_DSN", dsn_url(postgres_dsn))
    monkeypatch.setenv("MM_AUDIT_ARCHIVE", f"file://{tmp_path / 'archive'}")
    with psycopg.connect(postgres_dsn) as conn:
        for i in range(3):
            chain.append(conn, "ada", "payout.approved", f"batch:b{i}", {"amount": "12.50"}, role="finance")

    assert "0 sealed audit records" in mm("audit", "verify").stdout
    sealed = mm("audit", "seal")
    assert sealed.stdout.split() == ["audit/segments/000000000001-000000000003.jsonl"]
    assert "1 segment(s) sealed" in sealed.stderr
    assert "nothing to seal" in mm("audit", "seal").stderr
    verified = mm("audit", "verify").stdout
    assert "3 audit records, chain intact" in verified
    assert "3 sealed audit records" in verified and "match Postgres" in verified

    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    failed = mm("audit", "verify", check=False)
    assert failed.returncode == 1
    errors = " ".join(failed.stderr.split())
    assert "record 2: contents do not match its hash (the record was altered)" in errors
    assert "archive: record 2: Postgres differs from the archive in actor (edited or reordered after sealing)" in errors
