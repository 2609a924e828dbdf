"""The development issuer: signs tokens on a laptop so the API runs with no identity provider (`mm token`).

Its key pair lives in `$MM_HOME/identity/` and is published as a JWKS like any issuer's, so the API verifies its
tokens on the same path as a real provider's. It refuses to exist in production or beside a configured issuer: a
production deployment cannot start accepting tokens minted on someone's machine by forgetting a variable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from filelock import FileLock

from mm_pipelines.config import ConfigError, Settings
from mm_pipelines.identity import signed
from mm_pipelines.identity.roles import Role
from mm_pipelines.identity.tokens import TokenVerifier, jwk_set

ISSUER_PATH = "/dev-issuer"
# Two keys at most: the one that signs and the one before it, whose tokens stay valid until they expire.
KEPT_KEYS = 2
CODE_TTL_S = 60


def development_issuer_url(settings: Settings) -> str:
    return settings.api_public_url.rstrip("/") + ISSUER_PATH


class DevelopmentIssuer:
    def __init__(self, settings: Settings):
        if settings.production:
            raise ConfigError(
                "the development issuer is off in production (MM_ENVIRONMENT=production): "
                "tokens come from the issuer in MM_OIDC_ISSUER"
            )
        if settings.oidc_issuer:
            raise ConfigError(
                f"MM_OIDC_ISSUER is set ({settings.oidc_issuer}): tokens come from that issuer, not the development one"
            )
        self.issuer = development_issuer_url(settings)
        self.audience = settings.oidc_audience
        self.roles_claim = settings.oidc_roles_claim
        self.leeway_s = settings.oidc_clock_skew_seconds
        self.path = settings.home / "identity" / "development-issuer.json"
        self._cached: tuple[int, Mapping[str, jwt.PyJWK]] | None = None

    def _load(self) -> list[dict]:
        """The key ring, newest last; created on first use."""
        with FileLock(str(self.path) + ".lock"):
            if not self.path.exists():
                self._write([_new_key()])
            return json.loads(self.path.read_text())["keys"]

    def _write(self, ring: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": ring}))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def rotate(self) -> str:
        """Sign with a new key from now on; the previous one stays published. Returns the new kid."""
        with FileLock(str(self.path) + ".lock"):
            ring = json.loads(self.path.read_text())["keys"] if self.path.exists() else []
            ring = [*ring, _new_key()][-KEPT_KEYS:]
            self._write(ring)
        return ring[-1]["kid"]

    def jwks(self) -> dict:
        public = []
        for entry in self._load():
            key = serialization.load_pem_private_key(entry["pem"].encode(), password=None)
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            public.append({**jwk, "kid": entry["kid"], "use": "sig", "alg": "ES256"})
        return {"keys": public}

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + "/jwks.json",
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
        }

    def keys(self, refresh: bool = False) -> Mapping[str, jwt.PyJWK]:
        """The published keys, parsed again only when the ring changed (`mm token --rotate` in another process)."""
        stamp = self.path.stat().st_mtime_ns if self.path.exists() else -1
        if self._cached is None or self._cached[0] != stamp:
            keys = jwk_set(self.jwks())
            self._cached = (self.path.stat().st_mtime_ns, keys)
        return self._cached[1]

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(self.issuer, self.audience, self.roles_claim, self.leeway_s, self)

    def issue(
        self,
        subject: str,
        roles: Iterable[Role],
        *,
        amr: Iterable[str] = ("pwd", "otp"),
        ttl_s: int = 3600,
        now: float | None = None,
        not_before: float | None = None,
        audience: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> str:
        """A signed access token; `now`, `not_before` and `audience` let tests make expired, early and misaddressed
        ones."""
        if not subject.strip():
            raise ValueError("a token needs a subject: say who it is for (--sub NAME)")
        entry = self._load()[-1]
        issued = int(time.time() if now is None else now)
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audience,
            "iat": issued,
            "nbf": int(not_before) if not_before is not None else issued,
            "exp": issued + ttl_s,
            "jti": uuid.uuid4().hex,
            "amr": list(amr),
            "preferred_username": subject,
        }
        _set_claim(claims, self.roles_claim, sorted(r.value for r in roles))
        claims.update(extra or {})
        key = serialization.load_pem_private_key(entry["pem"].encode(), password=None)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": entry["kid"]})

    def authorization_code(
        self, secret: bytes, subject: str, roles: Iterable[Role], amr: Iterable[str], request: Mapping[str, str]
    ) -> str:
        """A short-lived code for the login the form just took; it carries what the token will say."""
        if request.get("code_challenge_method") != "S256" or not request.get("code_challenge"):
            raise OAuthError("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
        grant = {
            "sub": subject,
            "roles": sorted(r.value for r in roles),
            "amr": list(amr),
            "client_id": request.get("client_id", ""),
            "redirect_uri": request.get("redirect_uri", ""),
            "challenge": request["code_challenge"],
            "nonce": request.get("nonce", ""),
            "jti": uuid.uuid4().hex,  # two logins alike in every other way still get two codes, each usable once
        }
        return signed.sign(secret, "authorization-code", grant, int(time.time()) + CODE_TTL_S)

    def exchange(self, secret: bytes, form: Mapping[str, str]) -> dict:
        """The token endpoint: a code and its PKCE verifier for an access token and an ID token."""
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
        grant = signed.unsign(secret, "authorization-code", form.get("code", ""))
        if grant is None:
            raise OAuthError("invalid_grant", "the code is unknown or has expired: sign in again")
        if grant["client_id"] != form.get("client_id") or grant["redirect_uri"] != form.get("redirect_uri"):
            raise OAuthError("invalid_grant", "the code was issued to another client or redirect URI")
        if pkce_challenge(form.get("code_verifier", "")) != grant["challenge"]:
            raise OAuthError("invalid_grant", "the PKCE code_verifier does not match the code_challenge")
        self._redeem(form["code"])
        roles = [Role(r) for r in grant["roles"]]
        access = self.issue(grant["sub"], roles, amr=grant["amr"])
        id_token = self.issue(grant["sub"], roles, amr=grant["amr"], extra={"nonce": grant["nonce"]})
        return {"access_token": access, "id_token": id_token, "token_type": "Bearer", "expires_in": 3600}

    def _redeem(self, code: str) -> None:
        """A code buys one token (RFC 6749 section 4.1.2): its digest is kept, beside the key ring and shared by
        the service's worker processes, until the code would have expired anyway."""
        path = self.path.with_name("redeemed-codes.json")
        digest, now = hashlib.sha256(code.encode()).hexdigest(), int(time.time())
        with FileLock(str(path) + ".lock"):
            redeemed = {d: t for d, t in (json.loads(path.read_text()) if path.exists() else {}).items() if t > now}
            if digest in redeemed:
                raise OAuthError("invalid_grant", "the code was used already: sign in again")
            redeemed[digest] = now + CODE_TTL_S
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(redeemed))
            tmp.replace(path)


class OAuthError(ValueError):
    """An OAuth 2.0 error response (RFC 6749 section 5.2): `error` is the code, the message its description."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error = error


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _set_claim(claims: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for part in parents:
        claims = claims.setdefault(part, {})
    claims[last] = value


def _new_key() -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {"kid": f"dev-{uuid.uuid4().hex[:12]}", "pem": pem.decode(), "created": int(time.time())}


def local_secret(settings: Settings, name: str) -> bytes:
    """A random secret kept under MM_HOME for a development default (upload signing, webhook HMAC); never used in
    production, where the matching setting is required."""
    if settings.production:
        raise ConfigError(f"no {name} secret is generated in production: set it in the environment")
    path: Path = settings.home / "identity" / f"{name}.key"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(32).hex().encode())
            os.chmod(path, 0o600)
        return path.read_bytes()
