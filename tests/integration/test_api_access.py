"""Who may call what: every route × every role against an explicit table, and every way a token can be wrong."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from mm_pipelines.api.auth import api_routes, check_every_route_declares_access
from mm_pipelines.api.ui_session import SESSION_COOKIE, session_cookie
from mm_pipelines.identity.roles import Role
from mm_pipelines.royalties import batches

pytestmark = pytest.mark.integration

E, CM, CA, FV, MO, LE, FA = (
    Role.EDITOR,
    Role.CAMPAIGN_MANAGER,
    Role.CREATOR_ADMIN,
    Role.FINANCE_VIEWER,
    Role.MODERATOR,
    Role.LEGAL,
    Role.FINANCE_APPROVER,
)
PUBLIC = None
READERS = {E, CM, CA, MO, LE}
# The business's access rules, written out: a route whose roles change must change here too.
ACCESS = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/me"): set(Role),
    ("GET", "/dev-issuer/.well-known/openid-configuration"): PUBLIC,
    ("GET", "/dev-issuer/jwks.json"): PUBLIC,
    ("POST", "/assets"): {E, CA},
    ("GET", "/assets"): READERS,
    ("GET", "/assets/{asset_id}"): READERS,
    ("POST", "/assets/{asset_id}/versions"): {E, CA},
    ("POST", "/assets/{asset_id}/versions/{version}/upload-url"): {E, CA},
    ("POST", "/assets/{asset_id}/versions/{version}/complete"): {E, CA},
    ("PUT", "/uploads/{token}"): PUBLIC,
    ("GET", "/moderation/queue"): {MO, LE},
    ("POST", "/assets/{asset_id}/versions/{version}/approve"): {MO},
    ("POST", "/assets/{asset_id}/versions/{version}/block"): {MO},
    ("POST", "/assets/{asset_id}/versions/{version}/override"): {MO},
    ("POST", "/assets/{asset_id}/versions/{version}/appeal"): {E, CA},
    ("POST", "/assets/{asset_id}/versions/{version}/legal-signoff"): {LE},
    ("POST", "/assets/{asset_id}/takedown"): {MO, LE},
    ("POST", "/assets/{asset_id}/legal-hold"): {LE},
    ("POST", "/catalog"): {CA},
    ("GET", "/creators/{creator_id}"): {CA, FV, FA},
    ("GET", "/payouts/batches"): {FV, FA},
    ("GET", "/payouts/batches/{batch_id}"): {FV, FA},
    ("POST", "/payouts/batches/{batch_id}/approvals"): {FA},
    ("POST", "/payouts/batches/{batch_id}/recall"): {FA},
    ("POST", "/webhooks/sentinelnet"): PUBLIC,
    ("GET", "/dev-issuer/authorize"): PUBLIC,
    ("POST", "/dev-issuer/authorize"): PUBLIC,
    ("POST", "/dev-issuer/token"): PUBLIC,
    ("GET", "/ui"): PUBLIC,
    ("GET", "/ui/login"): PUBLIC,
    ("GET", "/ui/callback"): PUBLIC,
}
# The admin UI's pages: a session cookie instead of a bearer token, and a second factor always.
PAGES = {
    ("POST", "/ui/logout"): set(Role),
    ("GET", "/ui/assets"): READERS,
    ("GET", "/ui/assets/{asset_id}"): READERS,
    ("GET", "/ui/moderation"): {MO, LE},
    ("POST", "/ui/moderation/{asset_id}/{version}"): {MO, LE},
    ("GET", "/ui/creators"): {CA, FV, FA},
    ("POST", "/ui/creators"): {CA},
    ("GET", "/ui/payouts"): {FV, FA},
    ("POST", "/ui/payouts/{batch_id}/approve"): {FA},
}


def _routes(app) -> set[tuple[str, str]]:
    return {(method, r.path) for r in api_routes(app.routes) for method in r.methods - {"HEAD"}}


def test_the_tables_cover_every_route_of_the_app(api):
    assert _routes(api.app) == set(ACCESS) | set(PAGES)


def test_a_route_that_declares_no_roles_stops_the_app_from_starting():
    from fastapi import APIRouter, FastAPI

    router = APIRouter()
    router.get("/forgotten")(lambda: {})
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(RuntimeError, match="without declared roles.*/forgotten"):
        check_every_route_declares_access(app.routes)


@pytest.mark.parametrize(("method", "path"), [k for k, v in ACCESS.items() if v is not PUBLIC])
def test_each_role_is_allowed_exactly_where_the_table_says(api, method, path):
    url = path.format(asset_id="ast_none", version=1, batch_id="b_none", creator_id="cr_none")
    body = {} if method in ("POST", "PUT") else None
    anonymous = api.client.request(method, url, json=body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    for role in Role:
        response = api.client.request(method, url, json=body, headers=api.headers(f"user-{role}", role))
        if role in ACCESS[(method, path)]:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["detail"].startswith("this needs the role")


def _session(api, subject: str, *roles, amr=("pwd", "otp")) -> dict[str, str]:
    token = api.issuer.issue(subject, roles, amr=amr)
    secret = api.app.state.service.secret("upload")
    return {SESSION_COOKIE: session_cookie(secret, token, int(time.time()) + 600)}


@pytest.mark.parametrize(("method", "path"), list(PAGES))
def test_each_page_is_open_exactly_to_the_roles_the_table_says_and_only_with_a_second_factor(api, method, path):
    url = path.format(asset_id="ast_none", version=1, batch_id="b_none")
    client = TestClient(api.app, base_url="https://testserver", follow_redirects=False)
    anonymous = client.request(method, url)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login")
    for role in Role:
        client.cookies = _session(api, f"user-{role}", role)
        page = client.request(method, url, data={"csrf": "x", "action": "approve"} if method == "POST" else None)
        if role in PAGES[(method, path)]:
            # Allowed in: a GET renders (the unknown asset's page says so), a POST with a wrong CSRF token is refused
            # for that reason alone.
            if method == "POST":
                assert page.status_code == 403 and "CSRF" in page.text, (role, page.text)
            else:
                assert page.status_code in (200, 404) and "<main>" in page.text, (role, page.text)
        else:
            assert page.status_code == 403 and "this needs the role" in page.text, (role, page.text)
    allowed = next(iter(PAGES[(method, path)]))
    client.cookies = _session(api, "one-factor", allowed, amr=("pwd",))
    assert "second factor" in client.request(method, url).text


def test_a_token_without_any_known_role_is_refused_everywhere_but_public_routes(api):
    headers = api.headers("nobody")
    assert api.client.get("/me", headers=headers).status_code == 403
    assert api.client.get("/health", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda i: i.issue("a", [E], now=time.time() - 7200), "expired"),
        (lambda i: i.issue("a", [E], not_before=time.time() + 3600), "not valid yet"),
        (lambda i: i.issue("a", [E], audience="billing"), "not meant for this service"),
        (
            lambda i: jwt.encode(
                jwt.decode(i.issue("a", [E]), options={"verify_signature": False}),
                ec.generate_private_key(ec.SECP256R1()),
                algorithm="ES256",
                headers={"kid": jwt.get_unverified_header(i.issue("a", [E]))["kid"]},
            ),
            "signature does not verify",
        ),
        (lambda i: "Bearer-ish", "not a JWT"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrongly-signed", "garbage"],
)
def test_bad_tokens_get_401_problem_documents_that_say_why(api, make, message):
    response = api.client.get("/assets", headers={"Authorization": f"Bearer {make(api.issuer)}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def _draft_batch(api, total: str, created_by: str = "fran") -> str:
    batch_id = f"pb_{hashlib.sha256(total.encode()).hexdigest()[:12]}"
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        conn.execute(
            """INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by)
               VALUES (%s, '2026-11', 'EUR', %s, 3, 'draft', %s)""",
            (batch_id, total, created_by),
        )
    return batch_id


def test_payout_approval_binds_to_the_authenticated_approver_with_four_eyes_and_a_second_factor(api):
    batch_id = _draft_batch(api, "25000.10")
    url = f"/payouts/batches/{batch_id}/approvals"
    listed = api.client.get("/payouts/batches", headers=api.headers("vic", FV)).json()["items"]
    assert [(b["batch_id"], b["total"], b["status"]) for b in listed] == [(batch_id, "25000.10", "draft")]
    assert api.client.post(url, headers=api.headers("vic", FV)).status_code == 403
    single = api.client.post(url, headers=api.headers("alice", FA, amr=("pwd",)))
    assert single.status_code == 403 and "second factor" in single.json()["detail"]
    own = api.client.post(url, headers=api.headers("fran", FA))
    assert own.status_code == 409 and "cannot approve it" in own.json()["detail"]
    first = api.client.post(url, headers=api.headers("alice", FA)).json()
    assert (first["status"], first["approvals"], first["approvals_needed"]) == ("draft", 1, 2)
    again = api.client.post(url, headers=api.headers("alice", FA))
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    second = api.client.post(url, headers=api.headers("bob", FA)).json()
    assert second["status"] == "approved"
    detail = api.client.get(f"/payouts/batches/{batch_id}", headers=api.headers("vic", FV)).json()
    assert detail["approved_by"] == ["alice", "bob"] and detail["status"] == "approved"
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT actor, role, details->>'via' FROM audit_log WHERE action = 'payout.approval' ORDER BY seq"
        ).fetchall()
        vias = conn.execute("SELECT approver, via FROM payout_approvals ORDER BY approver").fetchall()
    assert rows == [("alice", "FinanceApprover", "api"), ("bob", "FinanceApprover", "api")]
    assert vias == [("alice", "api"), ("bob", "api")]
    missing = api.client.post("/payouts/batches/pb_missing/approvals", headers=api.headers("alice", FA))
    assert missing.status_code == 404


def _production_payouts(api) -> batches.PayoutSettings:
    """Payout settings as production has them: approvals and recalls only through the API."""
    return batches.PayoutSettings(
        dual_approval_above=api.settings.payout_dual_approval_above,
        debtor=None,
        signing_key=None,
        verify_key=None,
        execution_day=5,
        approvals_through_api_only=True,
    )


def test_production_accepts_payout_approvals_only_through_the_api(api):
    batch_id = _draft_batch(api, "50.00")
    settings = _production_payouts(api)
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        with pytest.raises(batches.BatchError, match="approve through the API"):
            batches.approve(conn, batch_id, "alice", settings)
        assert batches.approve(conn, batch_id, "alice", settings, role="FinanceApprover", via="api")[0] == "approved"


def _exported_batch(api, total: str, executes: str) -> str:
    """An exported 2026-11 batch of one pending line, to be executed on `executes`."""
    batch_id = _draft_batch(api, total)
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        conn.execute(
            "UPDATE payout_batches SET status = 'exported', execution_date = %s WHERE batch_id = %s",
            (executes, batch_id),
        )
        conn.execute(
            """INSERT INTO payout_lines (line_id, batch_id, payee_id, amount, currency)
               VALUES (%s, %s, 'pe-r', %s, 'EUR')""",
            (f"2026-11:pe-r:{batch_id}", batch_id, total),
        )
    return batch_id


def test_a_finance_approver_recalls_an_exported_batch_before_its_execution_date_once(api):
    batch_id = _exported_batch(api, "120.00", "2099-01-05")
    url = f"/payouts/batches/{batch_id}/recall"
    assert api.client.post(url, json={"reason": "wrong IBAN"}, headers=api.headers("vic", FV)).status_code == 403
    single = api.client.post(url, json={"reason": "wrong IBAN"}, headers=api.headers("alice", FA, amr=("pwd",)))
    assert single.status_code == 403 and "second factor" in single.json()["detail"]
    assert api.client.post(url, json={"reason": ""}, headers=api.headers("alice", FA)).status_code == 422
    recalled = api.client.post(url, json={"reason": "wrong IBAN"}, headers=api.headers("alice", FA))
    assert recalled.status_code == 200, recalled.text
    assert recalled.json() == {"batch_id": batch_id, "status": "recalled", "returned_period": "2026-12"}
    again = api.client.post(url, json={"reason": "twice"}, headers=api.headers("alice", FA))
    assert again.status_code == 409 and f"batch {batch_id} is recalled" in again.json()["detail"]
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute(
            "SELECT status, returned_period FROM payout_lines WHERE batch_id = %s", (batch_id,)
        ).fetchall() == [("recalled", "2026-12")]
        assert batches.returned_amounts(conn, "2026-12") == {("pe-r", "EUR"): Decimal("120.00")}
        audit = conn.execute(
            "SELECT actor, role, details->>'reason', details->>'via' FROM audit_log "
            "WHERE action = 'payout.batch_recalled'"
        ).fetchall()
    assert audit == [("alice", "FinanceApprover", "wrong IBAN", "api")]
    missing = api.client.post(
        "/payouts/batches/pb_missing/recall", json={"reason": "x"}, headers=api.headers("alice", FA)
    )
    assert missing.status_code == 404


def test_a_batch_past_its_execution_date_or_partly_confirmed_cannot_be_recalled(api):
    executed = _exported_batch(api, "80.00", "2026-01-05")
    late = api.client.post(f"/payouts/batches/{executed}/recall", json={"reason": "late"}, headers=api.headers("a", FA))
    assert (
        late.status_code == 409 and "executes on 2026-01-05, so it can no longer be recalled" in late.json()["detail"]
    )
    confirmed = _exported_batch(api, "81.00", "2099-01-05")
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        conn.execute("UPDATE payout_lines SET status = 'paid' WHERE batch_id = %s", (confirmed,))
    paid = api.client.post(f"/payouts/batches/{confirmed}/recall", json={"reason": "x"}, headers=api.headers("a", FA))
    assert paid.status_code == 409 and "already confirmed 1 line(s)" in paid.json()["detail"]
    draft = _draft_batch(api, "82.00")
    refused = api.client.post(f"/payouts/batches/{draft}/recall", json={"reason": "x"}, headers=api.headers("a", FA))
    assert refused.status_code == 409 and "a draft or approved one is cancelled" in refused.json()["detail"]
    settings = _production_payouts(api)
    pending = _exported_batch(api, "83.00", "2099-01-05")
    with (
        psycopg.connect(api.settings.postgres_dsn) as conn,
        pytest.raises(batches.BatchError, match="recall through the API"),
    ):
        batches.recall(conn, pending, "alice", "typed on a laptop", settings)
