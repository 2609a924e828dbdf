"""Derivatives of uploaded versions in Postgres (media_artifacts); each one recorded appends an audit record."""

from __future__ import annotations

import hashlib

import psycopg

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.media.records import asset_object

ACTOR = "media_derivatives_job"
MEDIA_PREFIXES = ("image/", "video/")
EXTENSIONS = {"image/jpeg": "jpg", "video/mp4": "mp4"}


def artifact_key(asset_id: str, version: int, kind: str, content_type: str) -> str:
    """Next to the version's own file: assets/<asset_id>/v<version>/derivatives/<kind>.<ext>."""
    return f"assets/{asset_id}/v{version}/derivatives/{kind}.{EXTENSIONS[content_type]}"


NO_DERIVATIVES = ("blocked", "taken_down")  # moderation states whose content is not to be copied further


def pending_versions(
    conn: psycopg.Connection, limit: int, prefixes: tuple[str, ...] = MEDIA_PREFIXES
) -> list[tuple[str, int]]:
    """(asset_id, version) of uploaded images and videos without any derivative yet, newest upload first.

    Newest first, because a version whose run failed stays pending (its run key is used): oldest first, a hundred
    such versions would take every place in the list and no new upload would get a thumbnail again."""
    patterns = [p.replace("%", r"\%").replace("_", r"\_") + "%" for p in prefixes]
    rows = conn.execute(
        """SELECT v.asset_id, v.version FROM media_asset_versions v
           WHERE v.upload_status = 'uploaded' AND v.sniffed_content_type LIKE ANY(%s) AND v.moderation <> ALL(%s)
             AND NOT EXISTS (SELECT 1 FROM media_artifacts a WHERE a.asset_id = v.asset_id AND a.version = v.version)
           ORDER BY v.completed_at DESC, v.asset_id, v.version
           LIMIT %s""",
        (patterns, list(NO_DERIVATIVES), limit),
    )
    return [(asset_id, version) for asset_id, version in rows]


def recorded_kinds(conn: psycopg.Connection, asset_id: str, version: int) -> set[str]:
    rows = conn.execute("SELECT kind FROM media_artifacts WHERE asset_id = %s AND version = %s", (asset_id, version))
    return {kind for (kind,) in rows}


def record_artifact(
    conn: psycopg.Connection,
    asset_id: str,
    version: int,
    kind: str,
    object_key: str,
    content_type: str,
    data: bytes,
    run_id: str,
) -> bool:
    """Record one derivative (and its audit record, in this transaction); False if it was already recorded."""
    sha256 = hashlib.sha256(data).hexdigest()
    inserted = conn.execute(
        """INSERT INTO media_artifacts (asset_id, version, kind, object_key, content_type, size, sha256, run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT DO NOTHING
           RETURNING kind""",
        (asset_id, version, kind, object_key, content_type, len(data), sha256, run_id),
    ).fetchone()
    if inserted is None:
        return False
    audit(
        conn,
        ACTOR,
        "asset.derivative_created",
        asset_object(asset_id, version),
        {"kind": kind, "object_key": object_key, "sha256": sha256},
        role="system",
    )
    return True
