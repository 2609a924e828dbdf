"""SentinelNet's scan API: the platform submits a scan with a callback URL; the verdict comes back through the
signed webhook (webhook.py). Submissions that fail (timeout, 429, 5xx) stay unsent and are retried with backoff by
moderation_scan_sensor; the version waits in `scanning`, never published meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

MAX_BACKOFF = timedelta(minutes=30)


class ScannerUnavailable(Exception):
    """SentinelNet did not take the scan now; the message says why."""


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, … up to 30 min between submissions of one scan."""
    return min(MAX_BACKOFF, timedelta(seconds=15 * 2 ** max(0, attempts - 1)))


class SentinelNetClient:
    def __init__(self, url: str, api_key: str, timeout_s: float = 5.0):
        self.url, self.api_key, self.timeout_s = url.rstrip("/"), api_key, timeout_s

    def submit(self, scan_id: str, callback_url: str, asset: Mapping[str, object]) -> str:
        """Queue a pre-publish scan; SentinelNet's id for it."""
        import httpx

        try:
            response = httpx.post(
                f"{self.url}/v1/scans",
                json={"scan_id": scan_id, "callback_url": callback_url, "asset": dict(asset)},
                headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": scan_id},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as e:
            raise ScannerUnavailable(f"SentinelNet unreachable ({type(e).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ScannerUnavailable(f"SentinelNet answered {response.status_code}")
        if response.status_code >= 400:
            raise ScannerUnavailable(
                f"SentinelNet refused the scan ({response.status_code}): check MM_SENTINELNET_API_KEY"
            )
        return str(response.json().get("id", scan_id))
