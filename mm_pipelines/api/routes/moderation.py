"""CommandPad: the review queue and its decisions, takedowns, legal holds. Each route names who may act."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import StringConstraints

from mm_pipelines.api.auth import Caller, allow
from mm_pipelines.api.params import AssetId, VersionNumber
from mm_pipelines.api.service import Service, service
from mm_pipelines.identity.roles import Role
from mm_pipelines.media.models import Strict
from mm_pipelines.moderation import service as moderation
from mm_pipelines.moderation.states import Action

router = APIRouter(tags=["moderation"])


class Decision(Strict):
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""


class LegalHold(Strict):
    hold: bool
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


@router.get("/moderation/queue")
def review_queue(caller: Caller = allow(Role.MODERATOR, Role.LEGAL), svc: Service = Depends(service)) -> dict:
    with svc.transaction() as conn:
        return {"items": moderation.review_queue(conn)}


def _decide(
    svc: Service, caller: Caller, asset_id: AssetId, version: VersionNumber, action: Action, reason: str
) -> dict:
    with svc.transaction() as conn:
        return {"version": moderation.decide(conn, asset_id, version, action, reason, caller.subject, caller.role)}


@router.post("/assets/{asset_id}/versions/{version}/approve")
def approve(
    asset_id: AssetId,
    version: VersionNumber,
    decision: Decision,
    caller: Caller = allow(Role.MODERATOR),
    svc: Service = Depends(service),
) -> dict:
    """Clear a quarantined or appealed version (it then waits for Legal when the scan found PII)."""
    return _decide(svc, caller, asset_id, version, Action.APPROVE, decision.reason)


@router.post("/assets/{asset_id}/versions/{version}/block")
def block(
    asset_id: AssetId,
    version: VersionNumber,
    decision: Decision,
    caller: Caller = allow(Role.MODERATOR),
    svc: Service = Depends(service),
) -> dict:
    return _decide(svc, caller, asset_id, version, Action.BLOCK, decision.reason)


@router.post("/assets/{asset_id}/versions/{version}/override")
def override(
    asset_id: AssetId,
    version: VersionNumber,
    decision: Decision,
    caller: Caller = allow(Role.MODERATOR),
    svc: Service = Depends(service),
) -> dict:
    """Reverse a block verdict; the reason is required and audited."""
    return _decide(svc, caller, asset_id, version, Action.OVERRIDE, decision.reason)


@router.post("/assets/{asset_id}/versions/{version}/appeal")
def appeal(
    asset_id: AssetId,
    version: VersionNumber,
    decision: Decision,
    caller: Caller = allow(Role.EDITOR, Role.CREATOR_ADMIN),
    svc: Service = Depends(service),
) -> dict:
    """The creator's side asks for a blocked version to be reviewed again."""
    return _decide(svc, caller, asset_id, version, Action.APPEAL, decision.reason)


@router.post("/assets/{asset_id}/versions/{version}/legal-signoff")
def legal_signoff(
    asset_id: AssetId,
    version: VersionNumber,
    decision: Decision,
    caller: Caller = allow(Role.LEGAL),
    svc: Service = Depends(service),
) -> dict:
    """Legal clears a version whose scan found PII."""
    return _decide(svc, caller, asset_id, version, Action.LEGAL_SIGNOFF, decision.reason)


@router.post("/assets/{asset_id}/takedown")
def takedown(
    asset_id: AssetId,
    decision: Decision,
    caller: Caller = allow(Role.MODERATOR, Role.LEGAL),
    svc: Service = Depends(service),
) -> dict:
    with svc.transaction() as conn:
        return {"asset": moderation.take_down(conn, asset_id, decision.reason, caller.subject, caller.role)}


@router.post("/assets/{asset_id}/legal-hold")
def legal_hold(
    asset_id: AssetId, body: LegalHold, caller: Caller = allow(Role.LEGAL), svc: Service = Depends(service)
) -> dict:
    with svc.transaction() as conn:
        return {
            "asset": moderation.set_legal_hold(
                conn, svc.platform.objects, asset_id, body.hold, body.reason, caller.subject, caller.role
            )
        }
