"""SentinelNet's verdict webhook. The built-in scanner's verdicts take this same path (accept_verdict)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from mm_pipelines.api.auth import public
from mm_pipelines.api.service import Service, service
from mm_pipelines.moderation import webhook
from mm_pipelines.moderation.service import SENTINELNET, receive_delivery

router = APIRouter(tags=["moderation"])


def accept_verdict(svc: Service, headers: Mapping[str, str], body: bytes, source: str = SENTINELNET) -> str:
    """Verify a signed verdict delivery and apply it once: "applied" or "duplicate". `source` names the scanner
    (the audit trail's actor)."""
    delivery = webhook.verify(
        svc.secret("sentinelnet"),
        webhook.header_value(headers, webhook.SIGNATURE_HEADER),
        body,
        svc.settings.webhook_replay_window_seconds,
    )
    with svc.transaction() as conn:
        return receive_delivery(conn, source, delivery, body)


@router.post(
    "/webhooks/sentinelnet",
    dependencies=[public("deliveries are authenticated by their HMAC-SHA256 signature, not a token")],
)
async def sentinelnet_verdict(request: Request, svc: Service = Depends(service)) -> dict:
    body = await request.body()
    return {"status": await run_in_threadpool(accept_verdict, svc, request.headers, body)}
