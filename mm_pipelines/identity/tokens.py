"""Bearer-token verification: signature against the issuer's JWKS, then iss, aud, exp and nbf with a clock skew.

An issuer rotates its keys by publishing a new one in its JWKS before signing with it; a token whose `kid` is not
in the cached key set makes the verifier fetch the set again (at most once per `min_refresh_s`, so a stream of
forged kids cannot turn the API into a load generator against the issuer).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import jwt

from mm_pipelines.identity.roles import Role, parse_roles

# Asymmetric only: an HS* token would be "signed" with whatever secret the verifier was handed, and `none` with none.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class TokenError(ValueError):
    """A token that does not prove who is calling; the message says what is wrong with it, never its contents."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the issuer's subject and the roles and authentication methods its token carries."""

    subject: str
    issuer: str
    roles: frozenset[Role]
    amr: tuple[str, ...] = ()
    name: str = ""
    claims: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def second_factor(self) -> bool:
        """Whether the login used a second factor (RFC 8176 `amr` values)."""
        return bool({"mfa", "otp", "hwk", "sms", "swk", "fpt", "face"} & set(self.amr))


class KeySource(Protocol):
    def keys(self, refresh: bool = False) -> Mapping[str, jwt.PyJWK]: ...


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """A claim by dotted path (`realm_access.roles`), or None."""
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def jwk_set(document: Mapping[str, object]) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by kid; keys without a kid or for encryption are skipped."""
    keys = {}
    for entry in document.get("keys", []) if isinstance(document, Mapping) else []:
        if not isinstance(entry, Mapping) or not entry.get("kid") or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(dict(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
    return keys


class HttpKeySource:
    """An OIDC issuer's keys from its discovery document's `jwks_uri`, cached for `cache_s`."""

    def __init__(
        self,
        issuer: str,
        fetch: Callable[[str], Mapping[str, object]],
        cache_s: float = 300.0,
        min_refresh_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.issuer = issuer.rstrip("/")
        self._fetch, self._cache_s, self._min_refresh_s, self._clock = fetch, cache_s, min_refresh_s, clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._document: Mapping[str, object] | None = None

    def discovery(self) -> Mapping[str, object]:
        """The issuer's discovery document (endpoints, keys), fetched once."""
        if self._document is None:
            document = self._fetch(f"{self.issuer}/.well-known/openid-configuration")
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise TokenError(
                    f"the discovery document of {self.issuer} names issuer {document.get('issuer')!r}: "
                    "set MM_OIDC_ISSUER to the issuer exactly as the provider states it"
                )
            self._document = document
        return self._document

    def _discover(self) -> str:
        return str(self.discovery()["jwks_uri"])

    def keys(self, refresh: bool = False) -> Mapping[str, jwt.PyJWK]:
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age > self._cache_s or (refresh and age > self._min_refresh_s):
                try:
                    self._keys = jwk_set(self._fetch(self._discover()))
                except TokenError:
                    raise
                except Exception as e:  # the issuer is down or answers garbage: no token can be checked now
                    if age is None:
                        raise TokenError(f"the issuer's keys cannot be fetched ({type(e).__name__})") from None
                else:
                    self._fetched_at = now
            return self._keys


def http_fetch(timeout_s: float = 5.0) -> Callable[[str], Mapping[str, object]]:
    import httpx

    def fetch(url: str) -> Mapping[str, object]:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
        response.raise_for_status()
        return response.json()

    return fetch


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, roles_claim: str, leeway_s: float, source: KeySource):
        self.issuer, self.audience, self.roles_claim, self.leeway_s, self.source = (
            issuer,
            audience,
            roles_claim,
            leeway_s,
            source,
        )

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError("the bearer token is not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise TokenError(f"tokens signed with {algorithm!r} are not accepted: the issuer must sign with a key pair")
        keys = self.source.keys()
        if kid not in keys:
            keys = self.source.keys(refresh=True)
        if kid not in keys:
            raise TokenError("the token is signed by a key the issuer does not publish")
        try:
            claims = jwt.decode(
                token,
                keys[kid].key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired: sign in again") from None
        except jwt.ImmatureSignatureError:
            raise TokenError(
                "the token is not valid yet (nbf or iat in the future): check the issuer's clock"
            ) from None
        except jwt.InvalidAudienceError:
            raise TokenError(
                f"the token is not meant for this service: its audience must be {self.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"the token comes from another issuer: this service accepts {self.issuer!r}") from None
        except jwt.MissingRequiredClaimError as e:
            raise TokenError(f"the token has no {e.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.InvalidTokenError as e:
            raise TokenError(f"the token is invalid ({type(e).__name__})") from None
        amr = claims.get("amr")
        return Principal(
            subject=str(claims["sub"]),
            issuer=self.issuer,
            roles=parse_roles(claim_at(claims, self.roles_claim)),
            amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
            name=str(claims.get("preferred_username") or claims.get("name") or claims["sub"]),
            claims=json.loads(json.dumps(claims)),
        )
