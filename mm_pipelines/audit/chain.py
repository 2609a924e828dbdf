"""Append to and verify the hash chain.

Each record's SHA-256 covers its canonical form (who, in which role, did what to which object, when, the digests
of the object before and after) chained to the previous record's hash, so an edited, deleted or reordered record
breaks the chain from there on. Records written before roles existed (format 1) and before the chain step moved
into Postgres (format 2) keep their original hash.

One writer at a time keeps the chain linear: an advisory lock held until the appending transaction ends. So that
writers queue on that lock for as short a time as possible, a transaction opened with `audited` collects its
records and writes them in the same round trip as its COMMIT (format 3: Postgres takes the previous hash and chains
the record's digest to it), so the lock is held for one statement and the commit, never while Python runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

import psycopg
from psycopg.types.json import Jsonb

GENESIS = "0" * 64
AUDIT_LOCK = 0x6D6D_6175  # "mmau": one writer at a time keeps the chain linear
FORMAT = 3


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    object: str
    details: dict
    before_sha256: str | None
    after_sha256: str | None
    prev_hash: str
    hash: str
    format: int

    def recomputed_hash(self) -> str:
        """The hash the record's contents give: equal to `hash` unless the record was altered."""
        return record_hash(
            self.format,
            self.prev_hash,
            self.actor,
            self.action,
            self.object,
            self.details,
            role=self.role,
            at=self.at,
            before=self.before_sha256,
            after=self.after_sha256,
        )


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"), ensure_ascii=False).encode()


def state_digest(state: object) -> str | None:
    """SHA-256 of an object's state as recorded before or after a change (None: it did not exist)."""
    return None if state is None else hashlib.sha256(canonical(state)).hexdigest()


def _at_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(
    fmt: int,
    prev: str,
    actor: str,
    action: str,
    obj: str,
    details: dict,
    *,
    role: str = "",
    at: datetime | None = None,
    before: str | None = None,
    after: str | None = None,
) -> str:
    if fmt == 1:
        return hashlib.sha256(canonical([prev, actor, action, obj, details])).hexdigest()
    if fmt == 2:
        body = {
            "format": fmt,
            "prev": prev,
            "at": _at_text(at),
            "actor": actor,
            "role": role,
            "action": action,
            "object": obj,
            "details": details,
            "before": before,
            "after": after,
        }
        return hashlib.sha256(canonical(body)).hexdigest()
    return chained(prev, content_digest(actor, action, obj, details, role=role, at=at, before=before, after=after))


def content_digest(
    actor: str,
    action: str,
    obj: str,
    details: dict,
    *,
    role: str,
    at: datetime,
    before: str | None,
    after: str | None,
) -> str:
    """SHA-256 of a format 3 record without its link: computed in Python, outside the lock."""
    body = {
        "format": FORMAT,
        "at": _at_text(at),
        "actor": actor,
        "role": role,
        "action": action,
        "object": obj,
        "details": details,
        "before": before,
        "after": after,
    }
    return hashlib.sha256(canonical(body)).hexdigest()


def chained(prev: str, content: str) -> str:
    """The format 3 link, exactly as `_INSERT` computes it in Postgres."""
    return hashlib.sha256((prev + content).encode()).hexdigest()


_INSERT = f"""
    INSERT INTO audit_log (at, actor, role, action, subject, details, before_sha256, after_sha256,
                           prev_hash, hash, format)
    SELECT %s, %s, %s, %s, %s, %s, %s, %s,
           prev.hash, encode(sha256(convert_to(prev.hash || %s, 'UTF8')), 'hex'), {FORMAT}
    FROM (SELECT coalesce((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), '{GENESIS}') AS hash) AS prev"""

# Connections inside `audited`: the records they have appended and not yet written.
_pending: WeakKeyDictionary[psycopg.Connection, list[tuple]] = WeakKeyDictionary()


def append(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    obj: str,
    details: dict | None = None,
    *,
    role: str = "",
    before: object = None,
    after: object = None,
) -> None:
    """Append a record chained to the previous one; call inside the transaction that makes the change, so that the
    record exists exactly when the change does. `before`/`after` are the object's states (recorded as digests).

    Inside `audited` the record is written with the commit; elsewhere now, holding the lock until the transaction
    ends."""
    details = json.loads(json.dumps(details or {}, default=str))
    before_sha, after_sha = state_digest(before), state_digest(after)
    # The time is Python's, not the column default's, so that the hash covers exactly what is stored.
    at = datetime.now(UTC)
    content = content_digest(actor, action, obj, details, role=role, at=at, before=before_sha, after=after_sha)
    row = (at, actor, role, action, obj, Jsonb(details), before_sha, after_sha, content)
    if (pending := _pending.get(conn)) is not None:
        pending.append(row)
    else:
        _write(conn, [row])


def _write(conn: psycopg.Connection, rows: list[tuple]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))  # its own statement: the insert's snapshot
    for row in rows:  # is taken after the lock is granted, so it sees the last record of the previous holder
        conn.execute(_INSERT, row)


@contextmanager
def audited(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A transaction whose audit records are written in one round trip with its COMMIT; rolled back if it raises.

    `conn` must be outside any transaction. A record appended in the block becomes visible (even to the block
    itself) when the block ends. Inside, `conn.transaction()` makes a savepoint, as in any open transaction."""
    idle = psycopg.pq.TransactionStatus.IDLE
    if conn.info.transaction_status != idle:
        raise RuntimeError("audited() needs a connection outside any transaction")
    # BEGIN and COMMIT are sent as statements, so that COMMIT can travel in the pipeline with the records.
    autocommit, conn.autocommit = conn.autocommit, True
    _pending[conn] = pending = []
    try:
        conn.execute("BEGIN")
        yield conn
        with conn.pipeline():
            if pending:
                _write(conn, pending)
            conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != idle:
            conn.execute("ROLLBACK")
        raise
    finally:
        del _pending[conn]
        if not conn.closed:
            conn.autocommit = autocommit


COLUMNS = "seq, at, actor, role, action, subject, details, before_sha256, after_sha256, prev_hash, hash, format"


def records(conn: psycopg.Connection, obj_prefix: str | None = None, limit: int = 1000) -> list[AuditRecord]:
    """The newest records first, optionally of one object and the objects under it (`asset:a1` and `asset:a1/v2`)."""
    if obj_prefix is None:
        rows = conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT %s", (limit,))
    else:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM audit_log WHERE subject = %s OR subject LIKE %s ORDER BY seq DESC LIMIT %s",
            (obj_prefix, obj_prefix.replace("%", r"\%").replace("_", r"\_") + "/%", limit),
        )
    return [AuditRecord(*row) for row in rows]


def verify(conn: psycopg.Connection) -> tuple[int, list[str]]:
    """(records checked, problems): a changed, removed or reordered record breaks the chain from there on."""
    problems, prev, n = [], GENESIS, 0
    for r in (AuditRecord(*row) for row in conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq")):
        n += 1
        if r.prev_hash != prev:
            problems.append(
                f"record {r.seq}: previous hash does not match record before it (a record was removed or reordered)"
            )
        if r.recomputed_hash() != r.hash:
            problems.append(f"record {r.seq}: contents do not match its hash (the record was altered)")
        prev = r.hash
    return n, problems
