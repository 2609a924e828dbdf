"""The admin UI's side of OIDC login: authorization code with PKCE (RFC 7636), state and nonce kept in a signed,
short-lived cookie rather than on the server, so any replica can finish a login another one started."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from mm_pipelines.identity import signed
from mm_pipelines.identity.development import pkce_challenge

LOGIN_TTL_S = 600


class LoginError(ValueError):
    """A login that cannot be completed; the message says what to do."""


def begin(discovery: Mapping[str, object], client_id: str, redirect_uri: str, secret: bytes, after: str):
    """(URL to send the browser to, value of the login cookie)."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    cookie = signed.sign(
        secret,
        "login",
        {"state": state, "nonce": nonce, "verifier": verifier, "after": after},
        int(time.time()) + LOGIN_TTL_S,
    )
    return f"{discovery['authorization_endpoint']}?{urlencode(query)}", cookie


def finish(
    cookie: str | None,
    secret: bytes,
    params: Mapping[str, str],
    client_id: str,
    redirect_uri: str,
    exchange: Callable[[dict], Mapping[str, object]],
    client_secret: str | None = None,
) -> tuple[str, str]:
    """Check the issuer's redirect against the login cookie and trade the code: (access token, page to return to)."""
    if "error" in params:
        raise LoginError(f"the identity provider refused the login ({params['error']}): try again")
    started = signed.unsign(secret, "login", cookie or "")
    if started is None:
        raise LoginError("the login expired or was started in another browser: start again")
    if not secrets.compare_digest(params.get("state", ""), started["state"]):
        raise LoginError("the login's state does not match (a forged or replayed redirect): start again")
    form = {
        "grant_type": "authorization_code",
        "code": params.get("code", ""),
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": started["verifier"],
    }
    if client_secret:
        form["client_secret"] = client_secret
    tokens = exchange(form)
    if "access_token" not in tokens:
        raise LoginError("the identity provider returned no access token: check MM_OIDC_CLIENT_ID")
    return str(tokens["access_token"]), str(started["after"])
