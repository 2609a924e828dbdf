"""Moderation by SentinelNet (a fake, as a separate server speaking its protocol) against `mm api` served by uvicorn:
the scan is submitted with a callback, the signed verdict arrives on the webhook (twice: applied once), and a scan
submitted during SentinelNet's outage is resent by the submission job when it returns."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from tests.conftest import dsn_url, free_port, serving
from tests.e2e.conftest import MM

pytestmark = pytest.mark.e2e
API_KEY, SECRET = "sn-test-key", "sn-webhook-secret"


@pytest.fixture
def platform(tmp_path, postgres_dsn, monkeypatch):
    sn_port, api_port = free_port(), free_port()
    sentinelnet, api = f"http://127.0.0.1:{sn_port}", f"http://127.0.0.1:{api_port}"
    env = {
        "MM_HOME": str(tmp_path / "mm"),
        "MM_POSTGRES_DSN": dsn_url(postgres_dsn),
        "MM_API_PUBLIC_URL": api,
        "MM_SENTINELNET_URL": sentinelnet,
        "MM_SENTINELNET_API_KEY": API_KEY,
        "MM_SENTINELNET_WEBHOOK_SECRET": SECRET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fake = [sys.executable, "-m", "tests.fakes.sentinelnet", "--port", str(sn_port), "--api-key", API_KEY]
    with (
        serving([*fake, "--secret", SECRET], sn_port, "/_control"),
        serving([MM, "api", "--port", str(api_port)], api_port, "/health", {**os.environ}),
    ):
        yield api, sentinelnet, postgres_dsn


def _token(role: str, sub: str) -> dict:
    token = subprocess.run([MM, "token", "--sub", sub, "--role", role], capture_output=True, text=True, check=True)
    return {"Authorization": f"Bearer {token.stdout.strip()}"}


def _upload(api: str, title: str) -> str:
    data = f"{title}\n".encode()
    editor = _token("Editor", "erin")
    created = httpx.post(
        f"{api}/assets",
        headers=editor,
        json={
            "title": title,
            "license": {
                "licensor": "ACME",
                "territories": ["DE"],
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
                "usage": ["paid"],
            },
            "file": {
                "filename": "copy.txt",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": "text/plain",
            },
        },
    ).json()
    httpx.put(created["upload"]["url"], content=data, headers=created["upload"]["headers"]).raise_for_status()
    asset_id = created["asset"]["asset_id"]
    done = httpx.post(f"{api}/assets/{asset_id}/versions/1/complete", headers=editor).json()
    assert done["version"]["moderation"] == "scanning"
    return asset_id


def _state(api: str, asset_id: str, until: str, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        detail = httpx.get(f"{api}/assets/{asset_id}", headers=_token("Moderator", "mo")).json()
        if detail["versions"][0]["moderation"] == until or time.monotonic() > deadline:
            return detail
        time.sleep(0.3)


def test_sentinelnet_scans_through_its_api_and_its_signed_webhook_and_redeliveries_apply_once(platform):
    api, _, dsn = platform
    asset_id = _upload(api, "A defamatory claim about a rival")
    detail = _state(api, asset_id, "blocked")
    assert detail["versions"][0]["moderation"] == "blocked"
    assert detail["versions"][0]["categories"] == ["defamation"]
    actions = [r["action"] for r in reversed(detail["audit"])]
    assert actions[-3:] == ["moderation.scan_submitted", "moderation.scan_sent", "moderation.verdict"]
    time.sleep(0.5)  # the second delivery of the same verdict
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM audit_log WHERE action = 'moderation.verdict'").fetchone() == (1,)


def test_a_scan_submitted_during_an_outage_is_resent_when_sentinelnet_returns(platform):
    from datetime import UTC, datetime, timedelta

    from mm_pipelines.moderation import service as moderation
    from mm_pipelines.moderation.sentinelnet import SentinelNetClient

    api, sentinelnet, dsn = platform
    httpx.post(f"{sentinelnet}/_control", json={"outage": True}).raise_for_status()
    asset_id = _upload(api, "Spring promo")
    with psycopg.connect(dsn) as conn:
        attempts, error = conn.execute("SELECT send_attempts, send_error FROM moderation_scans").fetchone()
    assert attempts == 1 and "503" in error
    httpx.post(f"{sentinelnet}/_control", json={"outage": False}).raise_for_status()
    with psycopg.connect(dsn) as conn:
        client = SentinelNetClient(sentinelnet, API_KEY)
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert moderation.send_scans(conn, client, f"{api}/webhooks/sentinelnet", now=later) == {"sent": 1, "retry": 0}
    assert _state(api, asset_id, "passed")["versions"][0]["moderation"] == "passed"
