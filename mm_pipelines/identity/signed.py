"""Values the service hands out and takes back unchanged (upload grants, login state, sessions, the development
issuer's codes): JSON, base64url, and an HMAC-SHA256 with an expiry inside, so no server-side state is needed.

Each kind of value is signed with its own key derived from the secret and its purpose, so one kind can never be
presented as another (an upload grant as a session, say)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"mm-signed:{purpose}".encode(), hashlib.sha256).digest()


def sign(secret: bytes, purpose: str, payload: dict, expires_at: int) -> str:
    body = _b64(json.dumps({**payload, "exp": expires_at}, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{hmac.new(_key(secret, purpose), body.encode(), hashlib.sha256).hexdigest()}"


def unsign(secret: bytes, purpose: str, token: str, now: float | None = None) -> dict | None:
    """The payload, or None when the value was changed, signed for another purpose or key, or has expired."""
    body, _, signature = token.partition(".")
    expected = hmac.new(_key(secret, purpose), body.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
        return None
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if (time.time() if now is None else now) > payload["exp"]:
        return None
    return payload
