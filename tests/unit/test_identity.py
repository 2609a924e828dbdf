"""Token verification against the development issuer's keys: signature, iss, aud, exp, nbf, key rotation, roles."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mm_pipelines.config import ConfigError, Settings
from mm_pipelines.identity.development import DevelopmentIssuer, local_secret
from mm_pipelines.identity.roles import Role, parse_roles, role_named
from mm_pipelines.identity.tokens import HttpKeySource, TokenError, TokenVerifier, claim_at

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"MM_HOME": str(tmp_path)})


@pytest.fixture
def issuer(settings) -> DevelopmentIssuer:
    return DevelopmentIssuer(settings)


def test_a_token_from_the_issuer_verifies_with_its_subject_roles_and_second_factor(issuer):
    principal = issuer.verifier().verify(issuer.issue("alice", [Role.EDITOR, Role.LEGAL]))
    assert principal.subject == "alice"
    assert principal.roles == {Role.EDITOR, Role.LEGAL}
    assert principal.second_factor
    assert not issuer.verifier().verify(issuer.issue("bob", [], amr=("pwd",))).second_factor


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda i: i.issue("a", [Role.EDITOR], now=time.time() - 7200, ttl_s=3600), "expired"),
        (lambda i: i.issue("a", [Role.EDITOR], not_before=time.time() + 600), "not valid yet"),
        (lambda i: i.issue("a", [Role.EDITOR], audience="another-service"), "not meant for this service"),
        (lambda i: i.issue("a", [Role.EDITOR], extra={"iss": "https://evil.example"}), "another issuer"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer"],
)
def test_a_token_that_is_expired_early_misaddressed_or_foreign_is_refused(issuer, make, message):
    with pytest.raises(TokenError, match=message):
        issuer.verifier().verify(make(issuer))


def test_the_clock_skew_is_allowed_and_no_more(issuer):
    verifier = issuer.verifier()  # 60 s by default
    assert verifier.verify(issuer.issue("a", [], now=time.time() - 3630, ttl_s=3600)).subject == "a"
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(issuer.issue("a", [], now=time.time() - 3700, ttl_s=3600))


def test_a_token_signed_by_another_key_under_the_issuers_kid_is_refused(issuer):
    genuine = issuer.issue("a", [Role.FINANCE_APPROVER])
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine)["kid"]
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid})
    with pytest.raises(TokenError, match="signature does not verify"):
        issuer.verifier().verify(forged)


def test_symmetric_unsigned_and_unknown_key_tokens_are_refused(issuer):
    claims = jwt.decode(issuer.issue("a", [Role.EDITOR]), options={"verify_signature": False})
    with pytest.raises(TokenError, match="key pair"):
        issuer.verifier().verify(jwt.encode(claims, "s" * 32, algorithm="HS256"))
    with pytest.raises(TokenError, match="key pair"):
        issuer.verifier().verify(jwt.encode(claims, None, algorithm="none"))
    other = jwt.encode(claims, rsa.generate_private_key(65537, 2048), algorithm="RS256", headers={"kid": "other"})
    with pytest.raises(TokenError, match="does not publish"):
        issuer.verifier().verify(other)
    with pytest.raises(TokenError, match="not a JWT"):
        issuer.verifier().verify("not-a-token")


def test_after_rotation_old_and_new_tokens_verify_and_the_key_before_the_last_retires(issuer):
    verifier = issuer.verifier()
    first = issuer.issue("a", [Role.EDITOR])
    issuer.rotate()
    second = issuer.issue("a", [Role.EDITOR])
    assert jwt.get_unverified_header(first)["kid"] != jwt.get_unverified_header(second)["kid"]
    assert verifier.verify(first).subject == verifier.verify(second).subject == "a"
    issuer.rotate()
    with pytest.raises(TokenError, match="does not publish"):
        verifier.verify(first)


def test_the_http_key_source_refetches_on_an_unknown_kid_but_not_more_often_than_allowed(issuer):
    fetched, now = [], [1000.0]
    discovery = {**issuer.discovery()}

    def fetch(url):
        fetched.append(url)
        return discovery if url.endswith("openid-configuration") else issuer.jwks()

    source = HttpKeySource(issuer.issuer, fetch, cache_s=300, min_refresh_s=10, clock=lambda: now[0])
    verifier = TokenVerifier(issuer.issuer, issuer.audience, "roles", 60, source)
    verifier.verify(issuer.issue("a", []))
    assert len(fetched) == 2  # discovery, then the key set
    issuer.rotate()
    rotated = issuer.issue("a", [])
    with pytest.raises(TokenError, match="does not publish"):  # within min_refresh_s: no refetch
        verifier.verify(rotated)
    now[0] += 11
    assert verifier.verify(rotated).subject == "a"  # unknown kid: the key set is fetched again
    assert len(fetched) == 3


def test_a_discovery_document_naming_another_issuer_is_refused(issuer):
    source = HttpKeySource(issuer.issuer, lambda url: {"issuer": "https://other", "jwks_uri": "x"})
    with pytest.raises(TokenError, match="names issuer"):
        source.keys()


def test_roles_come_from_the_configured_claim_and_unknown_names_grant_nothing(tmp_path):
    settings = Settings.from_env({"MM_HOME": str(tmp_path), "MM_OIDC_ROLES_CLAIM": "realm_access.roles"})
    issuer = DevelopmentIssuer(settings)
    token = issuer.issue("a", [Role.MODERATOR])
    assert claim_at(jwt.decode(token, options={"verify_signature": False}), "realm_access.roles") == ["Moderator"]
    assert issuer.verifier().verify(token).roles == {Role.MODERATOR}
    assert parse_roles(["Moderator", "admin", "root", 7]) == {Role.MODERATOR}
    assert parse_roles("Editor Legal,FinanceViewer") == {Role.EDITOR, Role.LEGAL, Role.FINANCE_VIEWER}
    assert parse_roles({"Editor": True}) == frozenset()
    assert role_named("financeapprover") is Role.FINANCE_APPROVER
    with pytest.raises(ValueError, match="use one of"):
        role_named("Admin")


PRODUCTION = {
    "MM_ENVIRONMENT": "production",
    "MM_OIDC_ISSUER": "https://login.example.com",
    "MM_API_SIGNING_KEY": "k",
    "MM_SENTINELNET_WEBHOOK_SECRET": "s",
    "MM_PII_VAULT_URL": "https://vault.example.com:8200",
    "MM_PII_VAULT_TOKEN": "hvs.t",
    "MM_PII_DIGEST_KEY": "d",
}


def test_the_development_issuer_cannot_be_enabled_in_production_or_beside_a_real_issuer(tmp_path):
    with pytest.raises(ConfigError, match="needs MM_OIDC_ISSUER"):
        Settings.from_env({"MM_HOME": str(tmp_path), "MM_ENVIRONMENT": "production"})
    production = Settings.from_env({"MM_HOME": str(tmp_path), **PRODUCTION})
    with pytest.raises(ConfigError, match="off in production"):
        DevelopmentIssuer(production)
    with pytest.raises(ConfigError, match="no pii secret is generated in production"):
        local_secret(production, "pii")
    with pytest.raises(ConfigError, match="MM_OIDC_ISSUER is set"):
        DevelopmentIssuer(Settings.from_env({"MM_HOME": str(tmp_path), "MM_OIDC_ISSUER": "https://login.example.com"}))
    with pytest.raises(ConfigError, match="MM_ENVIRONMENT='staging' is unknown"):
        Settings.from_env({"MM_HOME": str(tmp_path), "MM_ENVIRONMENT": "staging"})


@pytest.mark.parametrize("missing", ["MM_PII_VAULT_URL", "MM_PII_VAULT_TOKEN", "MM_PII_DIGEST_KEY"])
def test_production_keeps_payee_pii_in_vault_never_on_this_machine(tmp_path, missing):
    env = {"MM_HOME": str(tmp_path), **{k: v for k, v in PRODUCTION.items() if k != missing}}
    with pytest.raises(ConfigError, match=rf"^MM_ENVIRONMENT=production needs {missing}: .*a PII vault on its disk$"):
        Settings.from_env(env)


def test_an_authorization_code_buys_one_token_and_two_alike_logins_get_two_codes(issuer):
    from mm_pipelines.identity.development import OAuthError, pkce_challenge

    secret, verifier = b"s" * 32, "v" * 43
    request = {"code_challenge_method": "S256", "code_challenge": pkce_challenge(verifier), "client_id": "ui"}
    request["redirect_uri"] = "https://mm.example/ui/callback"
    first, second = (issuer.authorization_code(secret, "mo", [Role.MODERATOR], ["otp"], request) for _ in range(2))
    assert first != second
    form = {"grant_type": "authorization_code", "client_id": "ui", "redirect_uri": request["redirect_uri"]}
    form["code_verifier"] = verifier
    assert issuer.exchange(secret, {**form, "code": first})["token_type"] == "Bearer"
    with pytest.raises(OAuthError, match="the code was used already: sign in again"):
        issuer.exchange(secret, {**form, "code": first})
    assert issuer.exchange(secret, {**form, "code": second})["access_token"]
