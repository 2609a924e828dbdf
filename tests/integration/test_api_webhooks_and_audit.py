"""The SentinelNet webhook over HTTP (signature, replay window, idempotency) and the audit chain's tamper checks."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from mm_pipelines.audit import chain
from mm_pipelines.identity.roles import Role
from mm_pipelines.moderation import service as moderation
from mm_pipelines.moderation import webhook

pytestmark = pytest.mark.integration

DATA = b"A clean caption.\n"


def _scanning(api) -> tuple[str, str]:
    """An uploaded version whose SentinelNet scan is out: (asset id, scan id)."""
    created = api.create("erin", Role.EDITOR, DATA).json()
    assert api.put(created["upload"], DATA).status_code == 204
    asset_id = created["asset"]["asset_id"]
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        from mm_pipelines.media.records import complete_upload

        complete_upload(conn, api.client.app.state.service.platform.objects, asset_id, 1, "erin", "Editor")
        scan_id = moderation.submit_scan(conn, asset_id, 1, moderation.SENTINELNET, "erin", "Editor")
    return asset_id, scan_id


def _deliver(api, body: dict, timestamp: int | None = None, secret: bytes | None = None):
    raw = json.dumps(body).encode()
    secret = secret or api.client.app.state.service.secret("sentinelnet")
    header = webhook.signature_header(secret, raw, timestamp)
    return api.client.post("/webhooks/sentinelnet", content=raw, headers={webhook.SIGNATURE_HEADER: header})


def test_a_signed_verdict_applies_once_and_redeliveries_change_nothing(api):
    asset_id, scan_id = _scanning(api)
    verdict = {
        "delivery_id": "dlv-1",
        "scan_id": scan_id,
        "verdict": "block",
        "categories": ["copyright"],
        "evidence": [{"kind": "fingerprint", "match": "stock-123"}],
    }
    first = _deliver(api, verdict)
    assert first.json() == {"status": "applied"}
    assert _deliver(api, verdict).json() == {"status": "duplicate"}  # same delivery again
    assert _deliver(api, {**verdict, "delivery_id": "dlv-2", "verdict": "pass", "categories": []}).json() == {
        "status": "duplicate"  # a second verdict for a scan that has one
    }
    reused = _deliver(api, {**verdict, "categories": ["policy"]})
    assert reused.status_code == 409 and "another body" in reused.json()["detail"]
    detail = api.client.get(f"/assets/{asset_id}", headers=api.headers("mo", Role.MODERATOR)).json()
    assert detail["versions"][0]["moderation"] == "blocked"
    assert detail["versions"][0]["categories"] == ["copyright"]
    assert [r["action"] for r in detail["audit"]].count("moderation.verdict") == 1


def test_bad_signatures_stale_timestamps_and_unknown_scans_are_refused_and_leave_no_trace(api):
    asset_id, scan_id = _scanning(api)
    verdict = {"delivery_id": "dlv-x", "scan_id": scan_id, "verdict": "pass"}
    forged = _deliver(api, verdict, secret=b"guessed")
    assert forged.status_code == 401 and forged.headers["content-type"] == "application/problem+json"
    stale = _deliver(api, verdict, timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401 and "replay" in stale.json()["detail"]
    unsigned = api.client.post("/webhooks/sentinelnet", content=json.dumps(verdict).encode())
    assert unsigned.status_code == 401
    unknown = _deliver(api, {**verdict, "delivery_id": "dlv-y", "scan_id": "scn_nope"})
    assert unknown.status_code == 404
    malformed = _deliver(api, {**verdict, "verdict": "perhaps"})
    assert malformed.status_code == 422 and "verdict" in malformed.json()["detail"]
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0] == 0
        state = conn.execute("SELECT moderation FROM media_asset_versions WHERE asset_id = %s", (asset_id,)).fetchone()
    assert state == ("scanning",)
    assert _deliver(api, verdict).json() == {"status": "applied"}  # the genuine one still goes through


def test_audit_verify_finds_an_edited_deleted_or_reordered_record(api, postgres_dsn):
    for _ in range(3):
        _scanning(api)
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        count, problems = chain.verify(conn)
        assert count >= 12 and problems == []
        seqs = [s for (s,) in conn.execute("SELECT seq FROM audit_log ORDER BY seq")]
        tampering = [
            ("UPDATE audit_log SET role = 'Legal' WHERE seq = %s", (seqs[3],), "altered"),
            ("UPDATE audit_log SET at = at + interval '1 second' WHERE seq = %s", (seqs[3],), "altered"),
            ("DELETE FROM audit_log WHERE seq = %s", (seqs[5],), "removed or reordered"),
            (
                "UPDATE audit_log SET seq = CASE seq WHEN %s THEN %s ELSE %s END WHERE seq IN (%s, %s)",
                (seqs[6], -1, seqs[6], seqs[6], seqs[7]),
                "removed or reordered",
            ),
        ]
        for sql, params, message in tampering:
            with conn.transaction() as undone:
                conn.execute(sql, params)
                found = chain.verify(conn)[1]
                assert found and message in found[0], (sql, found)
                raise psycopg.Rollback(undone)
        assert chain.verify(conn)[1] == []
