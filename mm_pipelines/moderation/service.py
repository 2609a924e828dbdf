"""Moderation records: scans and their verdicts, CommandPad decisions, takedowns and legal holds, each audited in
the transaction that makes the change."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.errors import Conflict, Forbidden, NotFound
from mm_pipelines.identity.roles import Role
from mm_pipelines.media.records import asset_object, asset_row, audit_state, version_row
from mm_pipelines.moderation import scanner, webhook
from mm_pipelines.moderation.sentinelnet import ScannerUnavailable, SentinelNetClient
from mm_pipelines.moderation.sentinelnet import backoff as sentinelnet_backoff
from mm_pipelines.moderation.states import DECIDERS, REVIEW_QUEUE, Action, State, next_state
from mm_pipelines.stores.objects import ObjectStore

SENTINELNET = "sentinelnet"
BUILTIN = "builtin"
_VERDICT_ACTIONS = {
    scanner.PASS: Action.VERDICT_PASS,
    scanner.QUARANTINE: Action.VERDICT_QUARANTINE,
    scanner.BLOCK: Action.VERDICT_BLOCK,
}


def _move(conn, asset_id: str, version: int, action: Action, reason: str = "") -> tuple[dict, dict]:
    before = version_row(conn, asset_id, version, for_update=True)
    state = next_state(State(before["moderation"]), action, frozenset(before["categories"]), reason)
    conn.execute(
        "UPDATE media_asset_versions SET moderation = %s WHERE asset_id = %s AND version = %s",
        (state.value, asset_id, version),
    )
    return before, version_row(conn, asset_id, version)


def submit_scan(conn: psycopg.Connection, asset_id: str, version: int, scanner_name: str, actor: str, role: str) -> str:
    """Start the pre-publish scan of an uploaded version; its verdict arrives as a webhook delivery."""
    if version_row(conn, asset_id, version)["upload_status"] != "uploaded":
        raise Conflict(f"version {version} of asset {asset_id} has no verified upload to scan")
    before, after = _move(conn, asset_id, version, Action.SUBMIT)
    scan_id = f"scn_{uuid.uuid4().hex[:20]}"
    # The built-in scanner is handed its scans in process; SentinelNet's are sent after the commit (send_scans).
    conn.execute(
        """INSERT INTO moderation_scans (scan_id, asset_id, version, scanner, sent_at)
           VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)""",
        (scan_id, asset_id, version, scanner_name, scanner_name == BUILTIN),
    )
    audit(
        conn,
        actor,
        "moderation.scan_submitted",
        asset_object(asset_id, version),
        {"scan_id": scan_id, "scanner": scanner_name},
        role=role,
        before=audit_state(before),
        after=audit_state(after),
    )
    return scan_id


def send_scans(
    conn: psycopg.Connection,
    client: SentinelNetClient,
    callback_url: str,
    now: datetime | None = None,
    scan_id: str | None = None,
    limit: int = 100,
) -> dict[str, int]:
    """Send SentinelNet the scans it does not have yet (one, or all that are due); (sent, retry) counts. Each scan is
    its own transaction, and SentinelNet's Idempotency-Key (the scan id) makes a resend after a lost answer harmless."""
    now = now or datetime.now(UTC)
    due = conn.execute(
        """SELECT s.scan_id, s.asset_id, s.version, s.send_attempts, a.title, a.description, v.filename,
                  v.sniffed_content_type, v.declared_size, v.declared_sha256
           FROM moderation_scans s JOIN media_assets a USING (asset_id)
           JOIN media_asset_versions v ON v.asset_id = s.asset_id AND v.version = s.version
           WHERE s.scanner = %s AND s.sent_at IS NULL AND s.verdict IS NULL AND s.next_send_at <= %s
             AND (%s::text IS NULL OR s.scan_id = %s)
           ORDER BY s.next_send_at, s.scan_id LIMIT %s""",
        (SENTINELNET, now, scan_id, scan_id, limit),
    ).fetchall()
    conn.commit()
    counts = {"sent": 0, "retry": 0}
    for sid, asset_id, version, attempts, title, description, filename, content_type, size, sha256 in due:
        asset = {
            "asset_id": asset_id,
            "version": version,
            "title": title,
            "description": description,
            "filename": filename,
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
        }
        with conn.transaction():
            try:
                reference = client.submit(sid, callback_url, asset)
            except ScannerUnavailable as e:
                conn.execute(
                    """UPDATE moderation_scans SET send_attempts = send_attempts + 1, send_error = %s,
                              next_send_at = %s WHERE scan_id = %s""",
                    (str(e), now + sentinelnet_backoff(attempts + 1), sid),
                )
                counts["retry"] += 1
                continue
            conn.execute(
                """UPDATE moderation_scans SET sent_at = now(), send_attempts = send_attempts + 1, send_error = NULL
                   WHERE scan_id = %s""",
                (sid,),
            )
            audit(
                conn,
                SENTINELNET,
                "moderation.scan_sent",
                asset_object(asset_id, version),
                {"scan_id": sid, "reference": reference},
                role="system",
            )
            counts["sent"] += 1
    return counts


def unsent_scans(conn: psycopg.Connection, now: datetime | None = None) -> int:
    return conn.execute(
        """SELECT count(*) FROM moderation_scans
           WHERE scanner = %s AND sent_at IS NULL AND verdict IS NULL AND next_send_at <= %s""",
        (SENTINELNET, now or datetime.now(UTC)),
    ).fetchone()[0]


def receive_delivery(conn: psycopg.Connection, source: str, delivery: webhook.VerdictDelivery, body: bytes) -> str:
    """Apply a verified verdict once: "applied", or "duplicate" for a redelivery (same id, same body)."""
    body_sha = hashlib.sha256(body).hexdigest()
    inserted = conn.execute(
        """INSERT INTO webhook_deliveries (source, delivery_id, body_sha256) VALUES (%s, %s, %s)
           ON CONFLICT DO NOTHING""",
        (source, delivery.delivery_id, body_sha),
    ).rowcount
    if not inserted:
        (earlier,) = conn.execute(
            "SELECT body_sha256 FROM webhook_deliveries WHERE source = %s AND delivery_id = %s",
            (source, delivery.delivery_id),
        ).fetchone()
        if earlier != body_sha:
            raise Conflict(f"delivery {delivery.delivery_id} was received before with another body: refused")
        return "duplicate"
    scan = conn.execute(
        "SELECT asset_id, version, verdict FROM moderation_scans WHERE scan_id = %s FOR UPDATE", (delivery.scan_id,)
    ).fetchone()
    if scan is None:
        raise NotFound(f"no scan {delivery.scan_id!r}: the verdict is for a scan this platform did not submit")
    asset_id, version, earlier_verdict = scan
    if earlier_verdict is not None:
        return "duplicate"  # a second delivery (new id) of a verdict already applied
    categories = sorted(set(delivery.categories))
    conn.execute(
        """UPDATE moderation_scans SET verdict = %s, categories = %s, evidence = %s, delivery_id = %s,
                  delivered_at = now() WHERE scan_id = %s""",
        (delivery.verdict, categories, Jsonb(delivery.evidence), delivery.delivery_id, delivery.scan_id),
    )
    conn.execute(
        "UPDATE media_asset_versions SET categories = %s WHERE asset_id = %s AND version = %s",
        (categories, asset_id, version),
    )
    before, after = _move(conn, asset_id, version, _VERDICT_ACTIONS[delivery.verdict])
    audit(
        conn,
        source,
        "moderation.verdict",
        asset_object(asset_id, version),
        {"scan_id": delivery.scan_id, "verdict": delivery.verdict, "categories": categories},
        role="scanner",
        before=audit_state(before),
        after=audit_state(after),
    )
    return "applied"


@dataclass(frozen=True)
class BuiltinScanner:
    """Scans with moderation.scanner and delivers a signed verdict, as SentinelNet would."""

    objects: ObjectStore
    secret: bytes
    blocked_terms: tuple[str, ...]
    blocklist_path: Path

    def verdict_delivery(self, conn: psycopg.Connection, scan_id: str) -> tuple[dict[str, str], bytes]:
        asset_id, version = conn.execute(
            "SELECT asset_id, version FROM moderation_scans WHERE scan_id = %s", (scan_id,)
        ).fetchone()
        asset, row = asset_row(conn, asset_id), version_row(conn, asset_id, version)
        content = self.objects.get_bytes(row["object_key"])
        listed = scanner.parse_blocklist(self.blocklist_path.read_text()) if self.blocklist_path.exists() else []
        found = scanner.scan(
            {"title": asset["title"], "description": asset["description"], "filename": row["filename"]},
            content,
            row["sniffed_content_type"] or "",
            self.blocked_terms,
            listed,
        )
        body = json.dumps(
            {
                "delivery_id": f"dlv_{uuid.uuid4().hex[:20]}",
                "scan_id": scan_id,
                "verdict": found.verdict,
                "categories": list(found.categories),
                "evidence": [dict(e) for e in found.evidence],
            }
        ).encode()
        return {webhook.SIGNATURE_HEADER: webhook.signature_header(self.secret, body)}, body


def decide(
    conn: psycopg.Connection, asset_id: str, version: int, action: Action, reason: str, actor: str, role: Role
) -> dict:
    """A person's CommandPad decision on a version."""
    if role not in DECIDERS.get(action, frozenset()):
        raise Forbidden(
            f"a {role.value} cannot {action.value}: {', '.join(sorted(r.value for r in DECIDERS[action]))} can"
        )
    before, after = _move(conn, asset_id, version, action, reason)
    conn.execute(
        """INSERT INTO moderation_actions (asset_id, version, action, reason, actor, role)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (asset_id, version, action.value, reason, actor, role.value),
    )
    audit(
        conn,
        actor,
        f"moderation.{action.value}",
        asset_object(asset_id, version),
        {"reason": reason} if reason else {},
        role=role.value,
        before=audit_state(before),
        after=audit_state(after),
    )
    return after


def take_down(conn: psycopg.Connection, asset_id: str, reason: str, actor: str, role: Role) -> dict:
    """Withdraw every version of an asset (the publishing service carries it to the channels)."""
    if role not in DECIDERS[Action.TAKEDOWN]:
        raise Forbidden(f"a {role.value} cannot take an asset down: a Moderator or Legal can")
    before = asset_row(conn, asset_id, for_update=True)
    if before["taken_down_at"] is not None:
        raise Conflict(f"asset {asset_id} was already taken down on {before['taken_down_at']:%Y-%m-%d %H:%M} UTC")
    for (version,) in conn.execute(
        "SELECT version FROM media_asset_versions WHERE asset_id = %s ORDER BY version", (asset_id,)
    ).fetchall():
        _move(conn, asset_id, version, Action.TAKEDOWN, reason)
    conn.execute("UPDATE media_assets SET taken_down_at = now() WHERE asset_id = %s", (asset_id,))
    conn.execute(
        "INSERT INTO moderation_actions (asset_id, action, reason, actor, role) VALUES (%s, 'takedown', %s, %s, %s)",
        (asset_id, reason, actor, role.value),
    )
    after = asset_row(conn, asset_id)
    audit(
        conn,
        actor,
        "moderation.takedown",
        asset_object(asset_id),
        {"reason": reason},
        role=role.value,
        before=audit_state(before),
        after=audit_state(after),
    )
    return after


def set_legal_hold(
    conn: psycopg.Connection, objects: ObjectStore, asset_id: str, hold: bool, reason: str, actor: str, role: Role
) -> dict:
    """Place or release a legal hold: recorded and audited, and on S3 set on every stored version as an Object Lock
    legal hold, so that the server itself refuses their deletion (the embedded object store only records it)."""
    if role is not Role.LEGAL:
        raise Forbidden("only Legal places or releases a legal hold")
    if not reason.strip():
        from mm_pipelines.errors import Invalid

        raise Invalid("a legal hold needs a reason (the matter it preserves evidence for)")
    before = asset_row(conn, asset_id, for_update=True)
    if before["legal_hold"] == hold:
        raise Conflict(f"asset {asset_id} is {'already' if hold else 'not'} under legal hold")
    conn.execute("UPDATE media_assets SET legal_hold = %s WHERE asset_id = %s", (hold, asset_id))
    locked = []
    if hasattr(objects, "set_legal_hold"):
        for key, version_id in conn.execute(
            """SELECT object_key, object_version_id FROM media_asset_versions
               WHERE asset_id = %s AND upload_status <> 'awaiting_upload' ORDER BY version""",
            (asset_id,),
        ).fetchall():
            objects.set_legal_hold(key, version_id, hold)  # before the commit: a failure leaves nothing recorded
            locked.append(key)
    after = asset_row(conn, asset_id)
    audit(
        conn,
        actor,
        "legal.hold_placed" if hold else "legal.hold_released",
        asset_object(asset_id),
        {"reason": reason, "object_lock": locked},
        role=role.value,
        before=audit_state(before),
        after=audit_state(after),
    )
    return after


def review_queue(conn: psycopg.Connection, states: tuple[State, ...] = REVIEW_QUEUE) -> list[dict]:
    """Versions waiting for a person, oldest first, with the scan's categories and evidence."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT v.asset_id, v.version, a.title, v.moderation, v.categories, v.created_by, v.completed_at,
                      s.scan_id, s.scanner, s.evidence
               FROM media_asset_versions v JOIN media_assets a USING (asset_id)
               LEFT JOIN LATERAL (SELECT scan_id, scanner, evidence FROM moderation_scans
                                  WHERE asset_id = v.asset_id AND version = v.version
                                  ORDER BY submitted_at DESC LIMIT 1) s ON true
               WHERE v.moderation = ANY(%s)
               ORDER BY v.completed_at, v.asset_id, v.version""",
            ([s.value for s in states],),
        ).fetchall()


def actions(conn: psycopg.Connection, asset_id: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT version, action, reason, actor, role, at FROM moderation_actions
               WHERE asset_id = %s ORDER BY action_id""",
            (asset_id,),
        ).fetchall()
