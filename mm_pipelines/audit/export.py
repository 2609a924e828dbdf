"""Copies of the audit chain outside Postgres: a Kafka mirror and sealed, write-once segments in an archive.

Both exports follow a checkpoint in `audit_exports` (one row per sink: the last seq and hash it has taken). Records
are taken in seq order after the checkpoint; this is exactly the order in which they became visible, since
`chain.append` holds one advisory lock from taking its seq until its transaction ends.

- The Kafka mirror (`mirror_to_kafka`) is at-least-once: a crash after producing but before the checkpoint commits
  produces those records again on the next run. Consumers dedupe by seq (the message key), which names one record.
- The archive (`seal_segments`) writes JSON Lines segments and their manifests, on S3 under Object Lock COMPLIANCE
  retention, so a record sealed there can be neither changed nor deleted until the retention ends; `verify_archive`
  checks the archive in itself and against Postgres, so a record changed in Postgres after sealing is found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg

from mm_pipelines.audit.chain import COLUMNS, GENESIS, AuditRecord
from mm_pipelines.stores.bus import EventBus
from mm_pipelines.stores.objects import ObjectStore

KAFKA, ARCHIVE = "kafka", "archive"
SEGMENT_PREFIX = "audit/segments"
RETAIN_DAYS = 2555  # 7 years
SEGMENT_SUFFIX, MANIFEST_SUFFIX = ".jsonl", ".manifest.json"
MANIFEST_FORMAT = 1


class AuditExportError(RuntimeError):
    """The chain cannot be exported as it stands (it changed after an export, or the archive disagrees)."""


def canonical_record(r: AuditRecord) -> dict:
    """The record as JSON-safe values: `at` as ISO 8601 UTC with microseconds, everything else as stored."""
    out = dataclasses.asdict(r)
    out["at"] = r.at.astimezone(UTC).isoformat(timespec="microseconds")
    return out


def encode(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _from_canonical(d: dict) -> AuditRecord:
    fields = {f.name for f in dataclasses.fields(AuditRecord)}
    if set(d) != fields:
        raise ValueError(f"has fields {sorted(d)}, expected {sorted(fields)}")
    return AuditRecord(**{**d, "at": datetime.fromisoformat(d["at"])})


def _checkpoint(conn: psycopg.Connection, sink: str) -> tuple[int, str]:
    """The sink's checkpoint, locked until the transaction ends: two exports to one sink never interleave."""
    conn.execute("INSERT INTO audit_exports (sink) VALUES (%s) ON CONFLICT (sink) DO NOTHING", (sink,))
    row = conn.execute("SELECT last_seq, last_hash FROM audit_exports WHERE sink = %s FOR UPDATE", (sink,)).fetchone()
    return row[0], row[1]


def _advance(conn: psycopg.Connection, sink: str, last: AuditRecord) -> None:
    conn.execute(
        "UPDATE audit_exports SET last_seq = %s, last_hash = %s, updated_at = now() WHERE sink = %s",
        (last.seq, last.hash, sink),
    )


def _after(conn: psycopg.Connection, seq: int, limit: int, upto: int | None = None) -> list[AuditRecord]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM audit_log WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
        (seq, upto if upto is not None else 2**63 - 1, limit),
    )
    return [AuditRecord(*row) for row in rows]


def _check_continues(recs: list[AuditRecord], last_seq: int, last_hash: str, sink: str) -> None:
    """The records go on from the checkpoint's hash: an export never carries on past a changed chain."""
    prev = last_hash
    for r in recs:
        if r.prev_hash != prev:
            raise AuditExportError(
                f"record {r.seq}: its previous hash does not match the record before it (checkpoint of {sink} at "
                f"seq {last_seq}): the chain changed after it was exported; run `mm audit verify`"
            )
        prev = r.hash


def pending(conn: psycopg.Connection, sinks: tuple[str, ...] = (KAFKA, ARCHIVE)) -> int | None:
    """The newest seq when any of `sinks` has not taken the chain up to it; None when all are up to date."""
    newest = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    if newest is None:
        return None
    done = dict(conn.execute("SELECT sink, last_seq FROM audit_exports WHERE sink = ANY(%s)", (list(sinks),)))
    return newest if any(done.get(s, 0) < newest for s in sinks) else None


def mirror_to_kafka(conn: psycopg.Connection, bus: EventBus, topic: str, batch: int = 1000) -> int:
    """Produce every record after the `kafka` checkpoint to `topic` (key: the seq as text, value: the canonical
    record as JSON), batch by batch; how many were produced.

    Each batch is read and its checkpoint advanced in one transaction holding the checkpoint row FOR UPDATE, and
    the checkpoint commits only after `bus.produce` has returned, which is after the broker acknowledged every
    message (KafkaEventBus flushes an idempotent acks=all producer and raises on any failed delivery; the
    embedded log fsyncs). Delivery is at-least-once: a crash between producing and committing produces the batch
    again, so consumers dedupe by seq. The topic is created with one partition, keeping the messages in seq order.
    Commits on `conn`: call it with no transaction of the caller's open."""
    bus.ensure_topic(topic, 1)
    total = 0
    while True:
        last_seq, last_hash = _checkpoint(conn, KAFKA)
        recs = _after(conn, last_seq, batch)
        if not recs:
            conn.commit()
            return total
        _check_continues(recs, last_seq, last_hash, KAFKA)
        bus.produce(topic, [(str(r.seq).encode(), encode(canonical_record(r))) for r in recs])
        _advance(conn, KAFKA, recs[-1])
        conn.commit()
        total += len(recs)


def segment_name(first: int, last: int) -> str:
    return f"{first:012d}-{last:012d}"


def _segment_bytes(recs: list[AuditRecord]) -> bytes:
    return b"".join(encode(canonical_record(r)) + b"\n" for r in recs)


def seal_segments(
    conn: psycopg.Connection,
    objects: ObjectStore,
    prefix: str = SEGMENT_PREFIX,
    max_records: int = 1000,
    retain_days: int = RETAIN_DAYS,
    now: datetime | None = None,
) -> list[str]:
    """Seal every record after the `archive` checkpoint into segments of up to `max_records`: the JSON Lines
    `<prefix>/<first seq>-<last seq>.jsonl` and its `.manifest.json` (seq range, count, the first record's previous
    hash, the last record's hash, the segment's SHA-256). On S3 both are put under Object Lock COMPLIANCE retention
    for `retain_days`. The keys of the segments sealed; commits on `conn` after each segment.

    A run that died after putting a segment but before its checkpoint committed left that segment behind (under
    Object Lock it cannot be removed): the next run seals the same range under the same keys, never an overlap."""
    retain_until = (now or datetime.now(UTC)) + timedelta(days=retain_days)
    sealed = []
    while True:
        last_seq, last_hash = _checkpoint(conn, ARCHIVE)
        recs = _after(conn, last_seq, max_records)
        if not recs:
            conn.commit()
            return sealed
        first = recs[0].seq
        left = [
            k for k in objects.list_keys(f"{prefix}/{first:012d}-") if k.endswith((SEGMENT_SUFFIX, MANIFEST_SUFFIX))
        ]
        if left:  # an interrupted run's segment: take exactly its range again
            upto = int(left[0].rsplit("/", 1)[-1].split(".", 1)[0].split("-")[1])
            recs = _after(conn, last_seq, upto - last_seq, upto=upto)
            if recs[-1].seq != upto:
                raise AuditExportError(
                    f"{left[0]}: the archive holds records up to seq {upto}, Postgres only up to {recs[-1].seq}; "
                    "run `mm audit verify`"
                )
        _check_continues(recs, last_seq, last_hash, ARCHIVE)
        data = _segment_bytes(recs)
        base = f"{prefix}/{segment_name(first, recs[-1].seq)}"
        manifest = {
            "format": MANIFEST_FORMAT,
            "first_seq": first,
            "last_seq": recs[-1].seq,
            "count": len(recs),
            "prev_hash": recs[0].prev_hash,
            "last_hash": recs[-1].hash,
            "segment_sha256": hashlib.sha256(data).hexdigest(),
        }
        segment_key, manifest_key = base + SEGMENT_SUFFIX, base + MANIFEST_SUFFIX
        if segment_key in left and objects.get_bytes(segment_key) != data:
            raise AuditExportError(f"{segment_key}: already archived with other contents; run `mm audit verify`")
        if segment_key not in left:
            objects.put_bytes_locked(segment_key, data, retain_until)
        if manifest_key not in left:
            objects.put_bytes_locked(manifest_key, json.dumps(manifest, indent=2).encode() + b"\n", retain_until)
        _advance(conn, ARCHIVE, recs[-1])
        conn.commit()
        sealed.append(segment_key)


_FIELDS = [f.name for f in dataclasses.fields(AuditRecord)]


def verify_archive(
    conn: psycopg.Connection, objects: ObjectStore, prefix: str = SEGMENT_PREFIX
) -> tuple[int, list[str]]:
    """(archived records checked, problems): every segment against its manifest's SHA-256, the records' chain
    (links and hashes), the segments' seq ranges (no gap, no overlap), and each record against the Postgres row
    with its seq, so a record edited, deleted or reordered in Postgres after sealing is reported."""
    keys = objects.list_keys(f"{prefix}/")
    segments = {k.removesuffix(SEGMENT_SUFFIX) for k in keys if k.endswith(SEGMENT_SUFFIX)}
    manifests = {k.removesuffix(MANIFEST_SUFFIX) for k in keys if k.endswith(MANIFEST_SUFFIX)}
    problems: list[str] = []
    checked, prev_seq, prev_hash = 0, 0, GENESIS
    for base in sorted(segments | manifests):
        name = base.rsplit("/", 1)[-1]
        if base not in manifests:
            problems.append(f"segment {name}: has no manifest (it cannot be checked)")
            continue
        if base not in segments:
            problems.append(f"segment {name}: its manifest is there but the segment is missing (it was deleted)")
            try:  # the records after it are checked against the chain as the manifest left it
                manifest = json.loads(objects.get_bytes(base + MANIFEST_SUFFIX))
                prev_seq, prev_hash = max(prev_seq, int(manifest["last_seq"])), str(manifest["last_hash"])
            except (ValueError, KeyError, TypeError):
                pass
            continue
        try:
            manifest = json.loads(objects.get_bytes(base + MANIFEST_SUFFIX))
            first, last = manifest["first_seq"], manifest["last_seq"]
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"segment {name}: its manifest is unreadable ({e})")
            continue
        data = objects.get_bytes(base + SEGMENT_SUFFIX)
        if hashlib.sha256(data).hexdigest() != manifest.get("segment_sha256"):
            problems.append(
                f"segment {name}: SHA-256 does not match its manifest (the segment was replaced or altered)"
            )
        if name != segment_name(first, last):
            problems.append(f"segment {name}: its manifest names seq {first}-{last}")
        if first <= prev_seq:
            problems.append(f"segment {name}: overlaps the segment before it, which ends at seq {prev_seq}")
        else:
            missing = [
                row[0]
                for row in conn.execute(
                    "SELECT seq FROM audit_log WHERE seq > %s AND seq < %s ORDER BY seq", (prev_seq, first)
                )
            ]
            if missing:
                problems.append(
                    f"records {missing[0]}-{missing[-1]}: in Postgres but in no segment "
                    f"({len(missing)} record(s) missing from the archive before segment {name})"
                )
        try:
            archived = [json.loads(line) for line in data.splitlines() if line.strip()]
            recs = [_from_canonical(d) for d in archived]
        except (ValueError, TypeError, KeyError) as e:
            problems.append(f"segment {name}: its records are unreadable ({e})")
            prev_seq, prev_hash = max(prev_seq, last), manifest.get("last_hash", prev_hash)
            continue
        if len(recs) != manifest.get("count") or not recs or (recs[0].seq, recs[-1].seq) != (first, last):
            problems.append(
                f"segment {name}: holds {len(recs)} record(s) "
                + (f"seq {recs[0].seq}-{recs[-1].seq}" if recs else "")
                + f", its manifest says {manifest.get('count')} seq {first}-{last}"
            )
        if recs and recs[0].prev_hash != manifest.get("prev_hash"):
            problems.append(f"segment {name}: its first record's previous hash is not the manifest's")
        if recs and recs[-1].hash != manifest.get("last_hash"):
            problems.append(f"segment {name}: its last record's hash is not the manifest's")
        in_pg = {
            row[0]: canonical_record(AuditRecord(*row))
            for row in conn.execute(
                f"SELECT {COLUMNS} FROM audit_log WHERE seq BETWEEN %s AND %s",
                (min([first, *(r.seq for r in recs)]), max([last, *(r.seq for r in recs)])),
            )
        }
        for r, d in zip(recs, archived, strict=True):
            checked += 1
            if r.seq <= prev_seq:
                problems.append(f"record {r.seq}: archived out of order (after seq {prev_seq}) in segment {name}")
            if r.prev_hash != prev_hash:
                problems.append(
                    f"record {r.seq}: previous hash does not match the archived record before it "
                    f"(a record is missing or reordered in the archive)"
                )
            if r.recomputed_hash() != r.hash:
                problems.append(f"record {r.seq}: archived contents do not match its hash (segment {name})")
            stored = in_pg.pop(r.seq, None)
            if stored is None:
                problems.append(f"record {r.seq}: sealed in segment {name} but missing from Postgres (deleted)")
            elif stored != d:
                changed = [f for f in _FIELDS if stored.get(f) != d.get(f)]
                problems.append(
                    f"record {r.seq}: Postgres differs from the archive in {', '.join(changed)} "
                    "(edited or reordered after sealing)"
                )
            prev_seq, prev_hash = max(prev_seq, r.seq), r.hash
        for seq in sorted(in_pg):
            problems.append(f"record {seq}: in Postgres within segment {name}'s range but not in the segment")
        prev_seq = max(prev_seq, last)
    row = conn.execute("SELECT last_seq FROM audit_exports WHERE sink = %s", (ARCHIVE,)).fetchone()
    if row and row[0] > prev_seq:
        problems.append(
            f"records {prev_seq + 1}-{row[0]}: sealed (the archive checkpoint is at seq {row[0]}) but the archive "
            f"ends at seq {prev_seq} (segments are missing)"
        )
    return checked, problems
