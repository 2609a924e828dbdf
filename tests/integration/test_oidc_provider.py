"""The API behind a real OIDC provider (mock-oauth2-server, a separate process): discovery, JWKS over HTTP, roles
from the provider's tokens; a token from any other key or issuer is refused."""

from __future__ import annotations

import os

import httpx
import pytest

from mm_pipelines.identity.roles import Role
from tests.conftest import require_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oidc_issuer() -> str:
    return require_service(
        "The OIDC provider",
        os.environ.get("MM_TEST_OIDC_ISSUER"),
        "run `make test`, or scripts/services/oidc.sh start and export MM_TEST_OIDC_ISSUER=http://127.0.0.1:18480/mm",
    )


def provider_token(issuer: str, subject: str, role: Role | None, scope_extra: str = "") -> str:
    scope = " ".join(s for s in (f"role:{role.value}" if role else "", scope_extra) if s) or "openid"
    response = httpx.post(
        f"{issuer}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "mm-tests",
            "client_secret": "unused",
            "subject": subject,
            "scope": scope,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture
def provider_api(tmp_path, monkeypatch, postgres_dsn, oidc_issuer):
    from tests.integration.conftest import _api

    return _api(tmp_path, monkeypatch, postgres_dsn, f"file://{tmp_path}/objects", MM_OIDC_ISSUER=oidc_issuer)


def test_a_provider_token_is_verified_against_its_published_keys_and_carries_its_roles(provider_api, oidc_issuer):
    token = provider_token(oidc_issuer, "moira", Role.MODERATOR)
    me = provider_api.client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json() == {
        "subject": "moira",
        "name": "moira",
        "issuer": oidc_issuer,
        "roles": ["Moderator"],
        "second_factor": True,
    }
    queue = provider_api.client.get("/moderation/queue", headers={"Authorization": f"Bearer {token}"})
    assert queue.status_code == 200
    refused = provider_api.client.get("/payouts/batches", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403


def test_the_providers_single_factor_login_cannot_approve_payouts(provider_api, oidc_issuer):
    token = provider_token(oidc_issuer, "alice", Role.FINANCE_APPROVER, "amr:pwd")
    response = provider_api.client.post("/payouts/batches/pb_x/approvals", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and "second factor" in response.json()["detail"]


def test_with_a_provider_configured_development_tokens_are_refused_and_the_dev_issuer_is_off(provider_api, tmp_path):
    from mm_pipelines.config import Settings
    from mm_pipelines.identity.development import DevelopmentIssuer

    foreign = DevelopmentIssuer(Settings.from_env({"MM_HOME": str(tmp_path / "laptop")})).issue("eve", [Role.LEGAL])
    response = provider_api.client.get("/me", headers={"Authorization": f"Bearer {foreign}"})
    assert response.status_code == 401
    assert provider_api.client.get("/dev-issuer/jwks.json").status_code == 404
