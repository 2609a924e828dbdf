"""The admin UI: server-rendered pages over the same domains as the API, behind an OIDC login with a second factor.

Assets (list, detail with versions and the audit trail), the CommandPad review queue with its decisions, and payout
batches (FinanceViewer sees, FinanceApprover approves)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from mm_pipelines.api.auth import Caller, public
from mm_pipelines.api.params import AssetId, BatchId, VersionNumber
from mm_pipelines.api.routes.creators import creator_rows, onboard_catalog
from mm_pipelines.api.routes.payouts import batch_rows
from mm_pipelines.api.service import Service, service
from mm_pipelines.api.ui_session import LOGIN_COOKIE, SESSION_COOKIE, cookie_options, page, session_cookie
from mm_pipelines.audit.chain import records
from mm_pipelines.errors import DomainError, Forbidden
from mm_pipelines.identity import login
from mm_pipelines.identity.roles import Role
from mm_pipelines.media import records as media
from mm_pipelines.moderation import service as moderation
from mm_pipelines.moderation.states import DECIDERS, NEEDS_REASON, Action
from mm_pipelines.royalties import batches

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parents[1] / "templates")
READERS = (Role.EDITOR, Role.CAMPAIGN_MANAGER, Role.CREATOR_ADMIN, Role.MODERATOR, Role.LEGAL)
# What each review state offers, in the order the buttons appear.
DECISIONS = {
    "quarantined": [("approve", "Approve"), ("block", "Block")],
    "appealed": [("approve", "Approve"), ("block", "Block")],
    "awaiting_legal": [("legal_signoff", "Legal sign-off"), ("block", "Block")],
    "blocked": [("override", "Override")],
}


def render(request: Request, name: str, caller: Caller | None, status: int = 200, **context) -> HTMLResponse:
    notice = context.pop("notice_override", None) or request.query_params.get("notice")
    context |= {
        "caller": caller,
        "csrf": getattr(request.state, "csrf", ""),
        "notice": notice,
        "failed": status >= 400 or (notice or "").startswith("Not "),
    }
    return templates.TemplateResponse(request, name, context, status_code=status)


def _redirect(path: str, notice: str) -> RedirectResponse:
    from urllib.parse import urlencode

    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", status_code=303)


def _callback(svc: Service) -> str:
    return svc.settings.api_public_url.rstrip("/") + "/ui/callback"


@router.get("", dependencies=[public("a redirect to the assets page, which requires a login")])
def home() -> RedirectResponse:
    return RedirectResponse("/ui/assets", status_code=303)


@router.get("/login", dependencies=[public("starts an OIDC login; it reveals nothing")])
def start_login(request: Request, after: str = "/ui/assets", svc: Service = Depends(service)) -> RedirectResponse:
    if not after.startswith("/ui/") or after.startswith("//"):
        after = "/ui/assets"  # never an open redirect
    url, cookie = login.begin(svc.discovery(), svc.settings.oidc_client_id, _callback(svc), svc.secret("upload"), after)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(LOGIN_COOKIE, cookie, **cookie_options(login.LOGIN_TTL_S))
    return response


@router.get("/callback", dependencies=[public("completes a login: the state, PKCE and token are checked")])
def finish_login(request: Request, svc: Service = Depends(service)) -> HTMLResponse:
    settings = svc.settings
    try:
        token, after = login.finish(
            request.cookies.get(LOGIN_COOKIE),
            svc.secret("upload"),
            dict(request.query_params),
            settings.oidc_client_id,
            _callback(svc),
            svc.exchange_code,
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
        )
    except (login.LoginError, DomainError) as e:
        return render(request, "message.html", None, 400, title="Sign-in failed", message=str(e), retry="/ui/login")
    principal = svc.verifier.verify(token)
    if not principal.second_factor:
        return render(
            request,
            "message.html",
            None,
            403,
            title="A second factor is needed",
            message="The admin UI needs a login with a second factor (one-time code or security key).",
            retry="/ui/login",
        )
    expires_at = int(principal.claims.get("exp", time.time() + 3600))
    response = RedirectResponse(after, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(svc.secret("upload"), token, expires_at),
        **cookie_options(expires_at - int(time.time())),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
def logout(caller: Caller = page(*Role)) -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/assets")
def assets_page(request: Request, caller: Caller = page(*READERS), svc: Service = Depends(service)) -> HTMLResponse:
    with svc.transaction() as conn:
        items = media.list_assets(conn, 200, 0)
    return render(request, "assets.html", caller, assets=items, section="assets")


@router.get("/assets/{asset_id}")
def asset_page(
    request: Request, asset_id: AssetId, caller: Caller = page(*READERS), svc: Service = Depends(service)
) -> HTMLResponse:
    try:
        with svc.transaction() as conn:
            asset = media.asset_row(conn, asset_id)
            versions = media.versions(conn, asset_id)
            trail = records(conn, media.asset_object(asset_id), limit=500)
    except DomainError as e:
        return render(request, "message.html", caller, e.status, title=e.title, message=str(e))
    return render(request, "asset.html", caller, asset=asset, versions=versions, audit=trail, section="assets")


@router.get("/moderation")
def moderation_page(
    request: Request, caller: Caller = page(Role.MODERATOR, Role.LEGAL), svc: Service = Depends(service)
) -> HTMLResponse:
    with svc.transaction() as conn:
        items = moderation.review_queue(conn)
    return render(
        request,
        "moderation.html",
        caller,
        items=items,
        actions=DECISIONS,
        needs_reason={a.value for a in NEEDS_REASON},
        section="moderation",
    )


@router.post("/moderation/{asset_id}/{version}")
def decide(
    asset_id: AssetId,
    version: VersionNumber,
    action: str = Form(),
    reason: str = Form(""),
    caller: Caller = page(Role.MODERATOR, Role.LEGAL),
    svc: Service = Depends(service),
) -> RedirectResponse:
    try:
        chosen = Action(action)
        # The role this decision is taken in: the one of the caller's roles that may take it.
        role = next((r for r in DECIDERS.get(chosen, ()) if r in caller.principal.roles), None)
        if role is None:
            raise Forbidden(f"your roles cannot {action}")
        with svc.transaction() as conn:
            after = moderation.decide(conn, asset_id, version, chosen, reason, caller.subject, role)
    except (DomainError, ValueError) as e:
        return _redirect("/ui/moderation", f"Not done: {e}")
    return _redirect("/ui/moderation", f"{asset_id} v{version}: {action} recorded, now {after['moderation']}")


@router.get("/payouts")
def payouts_page(
    request: Request,
    caller: Caller = page(Role.FINANCE_VIEWER, Role.FINANCE_APPROVER),
    svc: Service = Depends(service),
) -> HTMLResponse:
    with svc.transaction() as conn:
        rows = batch_rows(conn)
    can_approve = Role.FINANCE_APPROVER in caller.principal.roles
    return render(request, "payouts.html", caller, batches=rows, can_approve=can_approve, section="payouts")


@router.post("/payouts/{batch_id}/approve")
def approve_batch(
    batch_id: BatchId, caller: Caller = page(Role.FINANCE_APPROVER), svc: Service = Depends(service)
) -> RedirectResponse:
    try:
        with svc.transaction() as conn:
            status, count, needed = batches.approve(
                conn, batch_id, caller.subject, svc.payout_settings, role=caller.role.value, via="ui"
            )
    except batches.BatchError as e:
        return _redirect("/ui/payouts", f"Not approved: {e}")
    return _redirect("/ui/payouts", f"Batch {batch_id}: {count} of {needed} approval(s), {status}")


@router.get("/creators")
def creators_page(
    request: Request,
    caller: Caller = page(Role.CREATOR_ADMIN, Role.FINANCE_VIEWER, Role.FINANCE_APPROVER),
    svc: Service = Depends(service),
) -> HTMLResponse:
    with svc.transaction() as conn:
        rows = creator_rows(conn)
    can_onboard = Role.CREATOR_ADMIN in caller.principal.roles
    return render(request, "creators.html", caller, creators=rows, can_onboard=can_onboard, section="creators")


@router.post("/creators")
def onboard_creators(
    request: Request,
    catalog: str = Form(""),
    caller: Caller = page(Role.CREATOR_ADMIN),
    svc: Service = Depends(service),
) -> HTMLResponse:
    try:
        document = yaml.safe_load(catalog) if catalog.strip() else None
        result = onboard_catalog(svc, caller, document)
    except yaml.YAMLError as e:
        return _creators_again(request, caller, svc, catalog, f"Not onboarded: not valid YAML or JSON ({e})")
    except DomainError as e:
        return _creators_again(request, caller, svc, catalog, f"Not onboarded: {e}")
    states = ", ".join(f"{k['payee_id']}: KYC {k['status']}" for k in result["kyc"]) or "no payees"
    return _redirect("/ui/creators", f"Onboarded {result['loaded']['creators']} creator(s); {states}")


def _creators_again(request: Request, caller: Caller, svc: Service, draft: str, notice: str) -> HTMLResponse:
    """The form again with what was typed, so a fix does not mean typing it twice."""
    with svc.transaction() as conn:
        rows = creator_rows(conn)
    return render(
        request,
        "creators.html",
        caller,
        422,
        creators=rows,
        can_onboard=True,
        draft=draft,
        section="creators",
        notice_override=notice,
    )
