"""Asset and version records in Postgres. Every change appends an audit record in the same transaction."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.errors import Conflict, Invalid, NotFound
from mm_pipelines.media.models import AssetCreate, FileDeclaration, object_name
from mm_pipelines.media.sniff import matches, sniff
from mm_pipelines.media.uploads import UPLOAD_URL_TTL_S, UploadGrant
from mm_pipelines.stores.objects import ObjectStore

ASSET_COLUMNS = (
    "asset_id, title, description, creator_id, licensor, territories, license_starts_on, license_ends_on, usage, "
    "legal_sensitive, legal_hold, taken_down_at, created_by, created_at"
)
VERSION_COLUMNS = (
    "asset_id, version, filename, declared_size, declared_sha256, declared_content_type, object_key, "
    "object_version_id, upload_status, upload_problem, sniffed_content_type, moderation, categories, created_by, "
    "created_at, completed_at"
)


def asset_object(asset_id: str, version: int | None = None) -> str:
    """The audit trail's name of an asset (or one of its versions)."""
    return f"asset:{asset_id}" if version is None else f"asset:{asset_id}/v{version}"


def audit_state(row: dict | None) -> dict | None:
    """A row as the audit trail digests it: stable types, no timestamps the database fills."""
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k not in ("created_at",)}


def asset_row(conn: psycopg.Connection, asset_id: str, for_update: bool = False) -> dict:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {ASSET_COLUMNS} FROM media_assets WHERE asset_id = %s{lock}", (asset_id,)).fetchone()
    if row is None:
        raise NotFound(f"no asset {asset_id!r}: list assets with GET /assets")
    return row


def version_row(conn: psycopg.Connection, asset_id: str, version: int, for_update: bool = False) -> dict:
    lock = " FOR UPDATE" if for_update else ""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {VERSION_COLUMNS} FROM media_asset_versions WHERE asset_id = %s AND version = %s{lock}",
            (asset_id, version),
        ).fetchone()
    if row is None:
        asset_row(conn, asset_id)
        raise NotFound(f"asset {asset_id} has no version {version}: see its versions with GET /assets/{asset_id}")
    return row


def versions(conn: psycopg.Connection, asset_id: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {VERSION_COLUMNS} FROM media_asset_versions WHERE asset_id = %s ORDER BY version", (asset_id,)
        ).fetchall()


def list_assets(conn: psycopg.Connection, limit: int, offset: int, moderation: str | None = None) -> list[dict]:
    """Assets newest first, each with its latest version's upload and moderation state."""
    where = "WHERE v.moderation = %s" if moderation else ""
    params = ([moderation] if moderation else []) + [limit, offset]
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""SELECT a.asset_id, a.title, a.creator_id, a.legal_hold, a.taken_down_at, a.created_by, a.created_at,
                       v.version AS latest_version, v.upload_status, v.moderation
                FROM media_assets a
                JOIN LATERAL (SELECT version, upload_status, moderation FROM media_asset_versions
                              WHERE asset_id = a.asset_id ORDER BY version DESC LIMIT 1) v ON true
                {where}
                ORDER BY a.created_at DESC, a.asset_id LIMIT %s OFFSET %s""",
            params,
        ).fetchall()


def _check_size(file: FileDeclaration, max_bytes: int) -> None:
    if file.size > max_bytes:
        from mm_pipelines.errors import TooLarge

        raise TooLarge(f"file.size {file.size:,} bytes is over the limit of {max_bytes:,}: upload a smaller file")


def _insert_version(conn, asset_id: str, version: int, file: FileDeclaration, actor: str) -> dict:
    key = f"assets/{asset_id}/v{version}/{object_name(file.filename)}"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""INSERT INTO media_asset_versions (asset_id, version, filename, declared_size, declared_sha256,
                                                  declared_content_type, object_key, created_by)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {VERSION_COLUMNS}""",
            (asset_id, version, file.filename, file.size, file.sha256, file.content_type, key, actor),
        ).fetchone()


def create_asset(conn: psycopg.Connection, draft: AssetCreate, actor: str, role: str, max_bytes: int) -> dict:
    """Record a new asset and its first version, awaiting upload."""
    _check_size(draft.file, max_bytes)
    if (
        draft.creator_id is not None
        and not conn.execute("SELECT 1 FROM creators WHERE creator_id = %s", (draft.creator_id,)).fetchone()
    ):
        raise Invalid(f"creator_id {draft.creator_id!r} is not a known creator: onboard the creator first")
    asset_id = f"ast_{uuid.uuid4().hex[:20]}"
    lic = draft.license
    with conn.cursor(row_factory=dict_row) as cur:
        asset = cur.execute(
            f"""INSERT INTO media_assets (asset_id, title, description, creator_id, licensor, territories,
                                          license_starts_on, license_ends_on, usage, legal_sensitive, created_by)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {ASSET_COLUMNS}""",
            (
                asset_id,
                draft.title,
                draft.description,
                draft.creator_id,
                lic.licensor,
                lic.territories,
                lic.starts_on,
                lic.ends_on,
                list(lic.usage),
                draft.legal_sensitive,
                actor,
            ),
        ).fetchone()
    audit(
        conn, actor, "asset.create", asset_object(asset_id), {"title": draft.title}, role=role, after=audit_state(asset)
    )
    version = _insert_version(conn, asset_id, 1, draft.file, actor)
    audit(conn, actor, "asset.version_create", asset_object(asset_id, 1), role=role, after=audit_state(version))
    return {**asset, "versions": [version]}


def add_version(conn: psycopg.Connection, asset_id: str, file: FileDeclaration, actor: str, role: str, max_bytes: int):
    """A re-upload: a new version awaiting its file; the earlier versions stay as they are."""
    _check_size(file, max_bytes)
    asset = asset_row(conn, asset_id, for_update=True)
    if asset["taken_down_at"] is not None:
        raise Conflict(f"asset {asset_id} was taken down: it takes no new versions")
    latest = conn.execute("SELECT max(version) FROM media_asset_versions WHERE asset_id = %s", (asset_id,)).fetchone()
    version = _insert_version(conn, asset_id, latest[0] + 1, file, actor)
    audit(
        conn,
        actor,
        "asset.version_create",
        asset_object(asset_id, version["version"]),
        role=role,
        after=audit_state(version),
    )
    return version


def upload_grant(version: dict) -> UploadGrant:
    if version["upload_status"] != "awaiting_upload":
        raise Conflict(
            f"version {version['version']} of asset {version['asset_id']} is {version['upload_status']}: "
            "upload a new version instead (POST /assets/{id}/versions)"
        )
    return UploadGrant(
        version["asset_id"],
        version["version"],
        version["object_key"],
        version["declared_size"],
        version["declared_sha256"],
        version["declared_content_type"],
        int(time.time()) + UPLOAD_URL_TTL_S,
    )


def complete_upload(
    conn: psycopg.Connection, objects: ObjectStore, asset_id: str, version: int, actor: str, role: str
) -> tuple[dict, str | None]:
    """Check the stored file against its declaration. (version, problem): with a problem the version is rejected
    (recorded, audited) and the caller reports it after committing."""
    before = version_row(conn, asset_id, version, for_update=True)
    if before["upload_status"] != "awaiting_upload":
        raise Conflict(f"version {version} of asset {asset_id} is already {before['upload_status']}")
    try:
        found = objects.digest(before["object_key"])
    except KeyError:
        raise Conflict(
            f"no file was uploaded for version {version} of asset {asset_id}: PUT it to the upload URL, then complete"
        ) from None
    sniffed = sniff(found.head)
    problem = None
    if found.size != before["declared_size"]:
        problem = f"the file has {found.size:,} bytes, {before['declared_size']:,} were declared"
    elif found.sha256 != before["declared_sha256"]:
        problem = "the file's SHA-256 is not the one declared"
    elif not matches(before["declared_content_type"], sniffed):
        problem = f"the file is {sniffed}, it was declared as {before['declared_content_type']}"
    conn.execute(
        """UPDATE media_asset_versions SET upload_status = %s, upload_problem = %s, sniffed_content_type = %s,
                  object_version_id = %s, completed_at = now()
           WHERE asset_id = %s AND version = %s""",
        ("rejected" if problem else "uploaded", problem, sniffed, found.version_id, asset_id, version),
    )
    after = version_row(conn, asset_id, version)
    audit(
        conn,
        actor,
        "asset.upload_rejected" if problem else "asset.upload_complete",
        asset_object(asset_id, version),
        {"problem": problem} if problem else {"size": found.size, "sha256": found.sha256, "content_type": sniffed},
        role=role,
        before=audit_state(before),
        after=audit_state(after),
    )
    return after, problem
