"""Who am I, is the service up, and the development issuer's discovery document and keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mm_pipelines.api.auth import Caller, allow, public
from mm_pipelines.api.service import Service, service
from mm_pipelines.errors import NotFound
from mm_pipelines.identity.development import ISSUER_PATH
from mm_pipelines.identity.roles import Role

router = APIRouter(tags=["identity"])


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
