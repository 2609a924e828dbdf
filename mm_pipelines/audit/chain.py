"""Append to and verify the hash chain.

Each record's SHA-256 covers its canonical form (who, in which role, did what to which object, when, the digests
of the object before and after, and the previous record's hash), so an edited, deleted or reordered record breaks
the chain from there on. Records written before roles existed (format 1) keep their original hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

GENESIS = "0" * 64
AUDIT_LOCK = 0x6D6D_6175  # "mmau": one writer at a time keeps the chain linear
FORMAT = 2


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
        body = [prev, actor, action, obj, details]
    else:
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
) -> str:
    """Append a record chained to the previous one; call inside the transaction that makes the change, so that the
    record exists exactly when the change does. `before`/`after` are the object's states (recorded as digests)."""
    details = json.loads(json.dumps(details or {}, default=str))
    before_sha, after_sha = state_digest(before), state_digest(after)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
    row = conn.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS
    # The time is Python's, not the column default's, so that the hash covers exactly what is stored.
    at = datetime.now(UTC)
    digest = record_hash(
        FORMAT, prev, actor, action, obj, details, role=role, at=at, before=before_sha, after=after_sha
    )
    conn.execute(
        """INSERT INTO audit_log (at, actor, role, action, subject, details, before_sha256, after_sha256,
                                  prev_hash, hash, format)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (at, actor, role, action, obj, Jsonb(details), before_sha, after_sha, prev, digest, FORMAT),
    )
    return digest


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
