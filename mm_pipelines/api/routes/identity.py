"""Who am I, is the service up, and the development issuer's discovery document and keys."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from mm_pipelines.api.auth import Caller, allow, public
from mm_pipelines.api.service import Service, service
from mm_pipelines.errors import Invalid, NotFound
from mm_pipelines.identity.development import ISSUER_PATH, OAuthError
from mm_pipelines.identity.roles import Role, role_named

router = APIRouter(tags=["identity"])
templates = Jinja2Templates(directory=Path(__file__).parents[1] / "templates")


@router.get("/health", dependencies=[public("liveness: says nothing but that the process answers")])
def health() -> dict:
    return {"status": "ok"}


@router.get("/me")
def me(caller: Caller = allow(*Role)) -> dict:
    p = caller.principal
    return {
        "subject": p.subject,
        "name": p.name,
        "issuer": p.issuer,
        "roles": sorted(r.value for r in p.roles),
        "second_factor": p.second_factor,
    }


def _issuer(svc: Service):
    if svc.development_issuer is None:
        raise NotFound("the development issuer is off: tokens come from the issuer in MM_OIDC_ISSUER")
    return svc.development_issuer


@router.get(
    f"{ISSUER_PATH}/.well-known/openid-configuration",
    dependencies=[public("an issuer's discovery document is public by definition")],
)
def development_discovery(svc: Service = Depends(service)) -> dict:
    return _issuer(svc).discovery()


@router.get(f"{ISSUER_PATH}/jwks.json", dependencies=[public("public keys")])
def development_jwks(svc: Service = Depends(service)) -> dict:
    return _issuer(svc).jwks()


@router.get(
    f"{ISSUER_PATH}/authorize", include_in_schema=False, dependencies=[public("the development issuer's sign-in page")]
)
def development_login_page(request: Request, svc: Service = Depends(service)) -> HTMLResponse:
    issuer = _issuer(svc)
    params = dict(request.query_params)
    _check_redirect(svc, params)
    return templates.TemplateResponse(
        request,
        "dev_login.html",
        {"caller": None, "request_params": params, "roles": [r.value for r in Role], "issuer": issuer.issuer},
    )


@router.post(
    f"{ISSUER_PATH}/authorize", include_in_schema=False, dependencies=[public("the development issuer's sign-in form")]
)
async def development_login(request: Request, svc: Service = Depends(service)) -> RedirectResponse:
    issuer = _issuer(svc)
    form = await request.form()
    params = {k: str(v) for k, v in form.items() if k not in ("subject", "roles", "otp")}
    redirect = _check_redirect(svc, params)
    subject = str(form.get("subject", "")).strip()
    if not subject:
        raise Invalid("say who you are: the subject is required")
    roles = [role_named(str(r)) for r in form.getlist("roles")]
    amr = ["pwd", "otp"] if str(form.get("otp", "")).strip() else ["pwd"]
    try:
        code = issuer.authorization_code(svc.secret("dev-issuer"), subject, roles, amr, params)
    except OAuthError as e:
        raise Invalid(str(e)) from None
    query = urlencode({"code": code, "state": params.get("state", "")})
    return RedirectResponse(f"{redirect}?{query}", status_code=303)


@router.post(
    f"{ISSUER_PATH}/token",
    include_in_schema=False,
    dependencies=[public("an OAuth token endpoint: the code and PKCE verifier")],
)
async def development_token(request: Request, svc: Service = Depends(service)) -> JSONResponse:
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        return JSONResponse(_issuer(svc).exchange(svc.secret("dev-issuer"), form))
    except OAuthError as e:
        return JSONResponse({"error": e.error, "error_description": str(e)}, status_code=400)


def _check_redirect(svc: Service, params: dict) -> str:
    """Only the UI's own callback: the development issuer is not an open redirector."""
    expected = svc.settings.api_public_url.rstrip("/") + "/ui/callback"
    if params.get("redirect_uri") != expected:
        raise Invalid(f"redirect_uri must be {expected}")
    return expected
