"""The API behind a real OIDC provider (mock-oauth2-server, a separate process): discovery, JWKS over HTTP, roles
from the provider's tokens; a token from any other key or issuer is refused."""

from __future__ import annotations

import pytest

from mm_pipelines.identity.roles import Role
from tests.conftest import provider_token

pytestmark = pytest.mark.integration


@pytest.fixture
def provider_api(api_factory, oidc_issuer):
    return api_factory(MM_OIDC_ISSUER=oidc_issuer)


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
