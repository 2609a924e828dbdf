"""Creator onboarding (CreatorAdmin): creators, payees, contract references and royalty rules, validated exactly as
`mm royalties load` validates a catalog file; every payee gets a KYC check at the provider."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Body, Depends

from mm_pipelines.api.auth import Caller, allow
from mm_pipelines.api.params import CreatorId
from mm_pipelines.api.service import Service, service
from mm_pipelines.config import Settings
from mm_pipelines.errors import Invalid, NotFound, Unavailable
from mm_pipelines.identity.roles import Role
from mm_pipelines.royalties import bank_details, kyc
from mm_pipelines.royalties.contracts import CatalogError, parse_catalog
from mm_pipelines.royalties.store import save_catalog
from mm_pipelines.stores.pii import PiiError, PiiVault

router = APIRouter(tags=["creators"])
DOCUMENT = Path("request body")


@cache
def pii(settings: Settings) -> tuple[PiiVault, bytes]:
    """The PII vault and digest key, built once per process (the vault keeps its connections), not per request."""
    return bank_details.vault(settings), bank_details.digest_key(settings)


def _with_pending_kyc(document: dict) -> dict:
    """KYC comes from the provider, never from the request: a payee's `kyc` may only be left out."""
    for c, creator in enumerate(document.get("creators") or []):
        for p, payee in enumerate((creator or {}).get("payees") or [] if isinstance(creator, dict) else []):
            if not isinstance(payee, dict):
                continue
            if "kyc" in payee:
                raise Invalid(
                    f"creators.{c}.payees.{p}.kyc: KYC is set by the KYC provider, not the request: leave it out"
                )
            payee["kyc"] = {"status": "pending", "evidence": "requested"}
    return document


@router.post("/catalog", status_code=201)
def onboard(
    document: dict = Body(
        description="Creators with their payees, contracts (with royalty rules) and licenses, as in a catalog file"
    ),
    caller: Caller = allow(Role.CREATOR_ADMIN),
    svc: Service = Depends(service),
) -> dict:
    """Onboard or update creators; errors name the line of the (pretty-printed) body and the field, as for files."""
    return onboard_catalog(svc, caller, document)


def onboard_catalog(svc: Service, caller: Caller, document: dict) -> dict:
    """The catalog document validated as a file would be, saved, and a KYC check opened for every payee."""
    if not isinstance(document, dict):
        raise Invalid("the catalog must be a mapping with creators, contracts and licenses")
    text = json.dumps(_with_pending_kyc(document), indent=2, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("the body has text that is not valid Unicode (a lone surrogate escape): send UTF-8") from None
    try:
        catalog = parse_catalog(DOCUMENT, text)
    except CatalogError as e:
        raise Invalid(str(e)) from None
    provider = kyc.provider_for(svc.settings)
    vault, digest_key = pii(svc.settings)
    with svc.transaction() as conn:
        try:
            counts = save_catalog(
                conn,
                catalog,
                f"api:{caller.subject}",
                caller.subject,
                role=caller.role.value,
                vault=vault,
                digest_key=digest_key,
            )
        except PiiError as e:
            raise Unavailable(f"the payees' bank details could not be stored (nothing was onboarded): {e}") from None
        for payee in catalog.payees:
            kyc.request_check(conn, payee.payee_id, caller.subject, caller.role.value)
    # The provider is asked now; when it is down the checks stay requested and the KYC sync retries them.
    with svc.platform.metadata.connect() as conn:
        kyc.sync(conn, provider)
        states = kyc.checks(conn, [p.payee_id for p in catalog.payees])
    return {
        "loaded": counts,
        "kyc": [
            {"payee_id": p.payee_id, **{k: v for k, v in states[p.payee_id].items() if k != "payee_id"}}
            for p in catalog.payees
        ],
    }


def creator_rows(conn) -> list[dict]:
    """Every creator with its payees' KYC state and bank hint (never the details themselves), for the admin UI."""
    rows = conn.execute(
        """SELECT c.creator_id, c.name, p.payee_id, p.bank_hint, p.kyc_status, k.status, k.last_error
           FROM creators c LEFT JOIN payees p USING (creator_id) LEFT JOIN kyc_checks k USING (payee_id)
           ORDER BY c.creator_id, p.payee_id"""
    ).fetchall()
    creators: dict[str, dict] = {}
    for creator_id, name, payee_id, hint, kyc_status, check, error in rows:
        entry = creators.setdefault(creator_id, {"creator_id": creator_id, "name": name, "payees": []})
        if payee_id:
            entry["payees"].append(
                {"payee_id": payee_id, "bank_hint": hint, "kyc_status": kyc_status, "check": check, "error": error}
            )
    return list(creators.values())


@router.get("/creators/{creator_id}")
def creator_detail(
    creator_id: CreatorId,
    caller: Caller = allow(Role.CREATOR_ADMIN, Role.FINANCE_VIEWER, Role.FINANCE_APPROVER),
    svc: Service = Depends(service),
) -> dict:
    with svc.transaction() as conn:
        creator = conn.execute("SELECT creator_id, name FROM creators WHERE creator_id = %s", (creator_id,)).fetchone()
        if creator is None:
            raise NotFound(f"no creator {creator_id!r}: onboard it with POST /catalog")
        payees = conn.execute(
            """SELECT payee_id, payout_method, currency, bank_hint, kyc_status, kyc_evidence
               FROM payees WHERE creator_id = %s ORDER BY payee_id""",
            (creator_id,),
        ).fetchall()
        contracts = [r for (r,) in conn.execute("SELECT reference FROM contracts WHERE creator_id = %s", (creator_id,))]
        states = kyc.checks(conn, [p[0] for p in payees])
    keys = ("payee_id", "payout_method", "currency", "bank_hint", "kyc_status", "kyc_evidence")
    return {
        "creator_id": creator[0],
        "name": creator[1],
        "contracts": contracts,
        "payees": [{**dict(zip(keys, p)), "kyc_check": states.get(p[0])} for p in payees],
    }
