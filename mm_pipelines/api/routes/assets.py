"""Assets: create (with the first version's upload URL), list, detail with versions, moderation and audit trail,
re-uploads, completion (the file checked against its declaration, then submitted for the pre-publish scan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from mm_pipelines.api.auth import Caller, allow, public
from mm_pipelines.api.params import AssetId, VersionNumber
from mm_pipelines.api.routes.webhooks import accept_verdict
from mm_pipelines.api.service import Service, service
from mm_pipelines.audit.chain import records
from mm_pipelines.errors import Invalid, TooLarge
from mm_pipelines.identity.roles import Role
from mm_pipelines.media import records as media
from mm_pipelines.media import uploads
from mm_pipelines.media.models import AssetCreate, FileDeclaration
from mm_pipelines.moderation import service as moderation
from mm_pipelines.moderation.service import BUILTIN
from mm_pipelines.moderation.states import State

router = APIRouter(tags=["assets"])
UPLOADERS = (Role.EDITOR, Role.CREATOR_ADMIN)
READERS = (Role.EDITOR, Role.CAMPAIGN_MANAGER, Role.CREATOR_ADMIN, Role.MODERATOR, Role.LEGAL)


def _upload(svc: Service, version: dict) -> dict:
    grant = media.upload_grant(version)
    return uploads.upload_target(svc.platform.objects, svc.settings.api_public_url, svc.secret("upload"), grant)


@router.post("/assets", status_code=201)
def create_asset(draft: AssetCreate, caller: Caller = allow(*UPLOADERS), svc: Service = Depends(service)) -> dict:
    with svc.transaction() as conn:
        asset = media.create_asset(conn, draft, caller.subject, caller.role.value, svc.settings.upload_max_bytes)
    return {"asset": asset, "upload": _upload(svc, asset["versions"][0])}


@router.get("/assets")
def list_assets(
    caller: Caller = allow(*READERS),
    svc: Service = Depends(service),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    moderation_state: Annotated[State | None, Query(alias="moderation")] = None,
) -> dict:
    with svc.transaction() as conn:
        items = media.list_assets(conn, limit, offset, moderation_state.value if moderation_state else None)
    return {"items": items, "limit": limit, "offset": offset}


@router.get("/assets/{asset_id}")
def asset_detail(asset_id: AssetId, caller: Caller = allow(*READERS), svc: Service = Depends(service)) -> dict:
    with svc.transaction() as conn:
        asset = media.asset_row(conn, asset_id)
        trail = records(conn, media.asset_object(asset_id), limit=500)
        return {
            **asset,
            "versions": media.versions(conn, asset_id),
            "decisions": moderation.actions(conn, asset_id),
            "audit": [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "actor": r.actor,
                    "role": r.role,
                    "action": r.action,
                    "object": r.object,
                    "details": r.details,
                    "hash": r.hash,
                }
                for r in trail
            ],
        }


@router.post("/assets/{asset_id}/versions", status_code=201)
def add_version(
    asset_id: AssetId, file: FileDeclaration, caller: Caller = allow(*UPLOADERS), svc: Service = Depends(service)
) -> dict:
    with svc.transaction() as conn:
        version = media.add_version(
            conn, asset_id, file, caller.subject, caller.role.value, svc.settings.upload_max_bytes
        )
    return {"version": version, "upload": _upload(svc, version)}


@router.post("/assets/{asset_id}/versions/{version}/upload-url")
def renew_upload_url(
    asset_id: AssetId, version: VersionNumber, caller: Caller = allow(*UPLOADERS), svc: Service = Depends(service)
) -> dict:
    with svc.transaction() as conn:
        row = media.version_row(conn, asset_id, version)
    return {"upload": _upload(svc, row)}


@router.post("/assets/{asset_id}/versions/{version}/complete")
def complete_upload(
    asset_id: AssetId, version: VersionNumber, caller: Caller = allow(*UPLOADERS), svc: Service = Depends(service)
) -> dict:
    """Verify the uploaded file (size, SHA-256, sniffed type) and submit it for the pre-publish scan."""
    with svc.transaction() as conn:
        row, problem = media.complete_upload(
            conn, svc.platform.objects, asset_id, version, caller.subject, caller.role.value
        )
        if problem is None:
            scan_id = moderation.submit_scan(
                conn, asset_id, version, svc.scanner_name, caller.subject, caller.role.value
            )
    if problem is not None:
        raise Invalid(f"the upload was rejected: {problem}; upload the declared file as a new version")
    if svc.sentinelnet is not None:
        # SentinelNet answers later, on the webhook; if it cannot take the scan now, moderation_scan_sensor resends.
        with svc.platform.metadata.connect() as conn:
            moderation.send_scans(conn, svc.sentinelnet, svc.verdict_callback, scan_id=scan_id)
    else:
        # The built-in scanner answers at once, through the webhook's own verification and idempotency.
        with svc.transaction() as conn:
            headers, body = svc.scanner.verdict_delivery(conn, scan_id)
        accept_verdict(svc, headers, body, source=BUILTIN)
    with svc.transaction() as conn:
        return {"version": media.version_row(conn, asset_id, version), "scan_id": scan_id}


@router.put(
    "/uploads/{token}",
    status_code=204,
    dependencies=[public("the URL carries an HMAC-signed, expiring grant for one declared file")],
)
async def upload(token: str, request: Request, svc: Service = Depends(service)) -> Response:
    """The embedded object store's upload target (with S3 the client PUTs to the presigned URL instead)."""
    grant = uploads.verify_grant(svc.secret("upload"), token)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > grant.size:
        raise TooLarge(f"Content-Length {int(declared):,} is over the {grant.size:,} bytes declared")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > grant.size:
            raise TooLarge(f"the upload is larger than the {grant.size:,} bytes declared: upload the declared file")
        chunks.append(chunk)
    await run_in_threadpool(uploads.receive, svc.platform.objects, grant, chunks)
    return Response(status_code=204)
