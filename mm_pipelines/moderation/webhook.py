"""SentinelNet's verdict webhook: HMAC-SHA256 over the timestamp and the body, a replay window, one effect per
delivery id. The built-in scanner signs its verdicts the same way and hands them to the same receiver."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationError

from mm_pipelines.errors import Invalid, Unauthorized
from mm_pipelines.media.models import Strict
from mm_pipelines.moderation.scanner import CATEGORIES, VERDICTS

SIGNATURE_HEADER = "X-SentinelNet-Signature"
DELIVERY_HEADER = "X-SentinelNet-Delivery"


class VerdictDelivery(Strict):
    delivery_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    scan_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    verdict: Literal[VERDICTS]  # type: ignore[valid-type]
    categories: list[Literal[CATEGORIES]] = Field(default_factory=list)  # type: ignore[valid-type]
    evidence: list[dict[str, str]] = Field(default_factory=list, max_length=100)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: bytes, header: str | None, body: bytes, window_s: float, now: float | None = None
) -> VerdictDelivery:
    """The delivery, once its signature and timestamp check out; Unauthorized otherwise (nothing is recorded)."""
    if not header:
        raise Unauthorized(f"the delivery has no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise Unauthorized(f"{SIGNATURE_HEADER} has no timestamp: expected t=<unix seconds>,v1=<hex HMAC>") from None
    expected = signature(secret, timestamp, body)
    # Several v1 values are allowed while SentinelNet rolls its secret.
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise Unauthorized("the delivery's signature does not verify: check MM_SENTINELNET_WEBHOOK_SECRET")
    if abs((time.time() if now is None else now) - timestamp) > window_s:
        raise Unauthorized(
            f"the delivery's timestamp is more than {window_s:g} s from now: refused as a possible replay"
        )
    try:
        return VerdictDelivery.model_validate_json(body)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"the delivery's {where} is invalid: {first['msg']}") from None


def header_value(headers: Mapping[str, str] | Sequence[tuple[str, str]], name: str) -> str | None:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == name.lower():
            return value
    return None
