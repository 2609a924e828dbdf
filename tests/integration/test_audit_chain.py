"""`audited` transactions on real Postgres: records written with the commit, nothing on rollback, savepoints inside,
and a linear chain under concurrent writers in which each transaction's records stay together."""

from __future__ import annotations

import threading
from itertools import groupby

import psycopg
import pytest

from mm_pipelines.audit import chain

pytestmark = pytest.mark.integration


def _count(dsn: str, sql: str = "SELECT count(*) FROM audit_log") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchone()[0]


def test_records_are_written_with_the_commit_and_verify(postgres_dsn):
    with psycopg.connect(postgres_dsn) as conn:
        with chain.audited(conn):
            conn.execute("INSERT INTO creators VALUES ('c1', 'Ada')")
            chain.append(conn, "alice", "creator.create", "creator:c1", role="CreatorAdmin", after={"name": "Ada"})
            chain.append(conn, "alice", "creator.rename", "creator:c1", role="CreatorAdmin", before={"name": "Ada"})
            assert chain.records(conn) == []  # written with the commit, not before
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not conn.autocommit
        assert [r.action for r in reversed(chain.records(conn))] == ["creator.create", "creator.rename"]
        assert chain.verify(conn) == (2, [])


def test_a_failing_block_leaves_neither_its_change_nor_its_records(postgres_dsn):
    with psycopg.connect(postgres_dsn) as conn:
        with pytest.raises(RuntimeError, match="refused"):
            with chain.audited(conn):
                with conn.transaction():  # a savepoint inside the open transaction, not a commit of its own
                    conn.execute("INSERT INTO creators VALUES ('c1', 'Ada')")
                chain.append(conn, "alice", "creator.create", "creator:c1")
                raise RuntimeError("refused")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with chain.audited(conn):
                chain.append(conn, "alice", "creator.create", "creator:c2")
                conn.execute("INSERT INTO creators VALUES ('c2', 'Bo'), ('c2', 'Bo')")
    assert _count(postgres_dsn) == 0 and _count(postgres_dsn, "SELECT count(*) FROM creators") == 0


def test_a_connection_inside_a_transaction_is_refused(postgres_dsn):
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(RuntimeError, match="outside any transaction"):
            with chain.audited(conn):
                pass


def test_concurrent_writers_keep_one_linear_chain_with_each_transactions_records_together(postgres_dsn):
    writers, transactions = 8, 15
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with psycopg.connect(postgres_dsn) as conn:
                for t in range(transactions):
                    if t % 5 == 4:  # now and then an append outside `audited`, which takes the lock at once
                        chain.append(conn, f"w{w}", "step", f"tx:{w}:{t}", {"i": 0})
                        chain.append(conn, f"w{w}", "step", f"tx:{w}:{t}", {"i": 1})
                        conn.commit()
                        continue
                    with chain.audited(conn):
                        for i in range(3):
                            chain.append(conn, f"w{w}", "step", f"tx:{w}:{t}", {"i": i})
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(postgres_dsn) as conn:
        checked, problems = chain.verify(conn)
        rows = conn.execute("SELECT subject, details->>'i' FROM audit_log ORDER BY seq").fetchall()
    assert problems == [] and checked == writers * (transactions // 5 * (4 * 3 + 2))
    runs = [[int(i) for _, i in group] for _, group in groupby(rows, key=lambda row: row[0])]
    assert len(runs) == writers * transactions  # each transaction's records are one unbroken run, in append order
    assert all(run == list(range(len(run))) for run in runs)
