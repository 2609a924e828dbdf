"""Assets through the API on real Postgres and a real S3 server: create, upload, complete, moderate, audit."""

from __future__ import annotations

import hashlib
import io
import json

import psycopg
import pytest
from PIL import Image

from mm_pipelines.audit import chain
from mm_pipelines.identity.roles import Role

pytestmark = pytest.mark.integration

CLEAN = b"Spring collection, shot in Lisbon.\n"
WITH_PII = b"Questions? jane.doe@example.com\n"


def _png(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, "PNG")
    return out.getvalue()


def _uploaded(api, data: bytes, content_type="text/plain", **fields) -> tuple[str, dict]:
    created = api.create("erin", Role.EDITOR, data, content_type, **fields)
    assert created.status_code == 201, created.text
    body = created.json()
    assert api.put(body["upload"], data).status_code in (200, 204)
    asset_id = body["asset"]["asset_id"]
    done = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    return asset_id, done


def test_a_clean_upload_is_verified_scanned_and_passes_with_every_step_audited(api):
    asset_id, done = _uploaded(api, CLEAN)
    assert done.status_code == 200, done.text
    version = done.json()["version"]
    assert (version["upload_status"], version["moderation"], version["sniffed_content_type"]) == (
        "uploaded",
        "passed",
        "text/plain",
    )
    detail = api.client.get(f"/assets/{asset_id}", headers=api.headers("lee", Role.LEGAL)).json()
    assert detail["territories"] == ["DE", "FR"] and detail["created_by"] == "erin"
    trail = [(r["actor"], r["role"], r["action"]) for r in reversed(detail["audit"])]
    assert trail == [
        ("erin", "Editor", "asset.create"),
        ("erin", "Editor", "asset.version_create"),
        ("erin", "Editor", "asset.upload_complete"),
        ("erin", "Editor", "moderation.scan_submitted"),
        ("builtin", "scanner", "moderation.verdict"),
    ]
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        count, problems = chain.verify(conn)
    assert (count, problems) == (5, [])


def test_pii_goes_to_the_queue_a_moderator_approves_and_legal_signs_off(api):
    asset_id, done = _uploaded(api, WITH_PII)
    assert done.json()["version"]["moderation"] == "quarantined"
    queue = api.client.get("/moderation/queue", headers=api.headers("mo", Role.MODERATOR)).json()["items"]
    [item] = [i for i in queue if i["asset_id"] == asset_id]
    assert item["categories"] == ["pii"] and item["evidence"][0]["kind"] == "email"
    assert "jane.doe" not in str(item["evidence"])
    url = f"/assets/{asset_id}/versions/1"
    refused = api.client.post(f"{url}/legal-signoff", json={}, headers=api.headers("mo", Role.MODERATOR))
    assert refused.status_code == 403
    approved = api.client.post(f"{url}/approve", json={"reason": "ok"}, headers=api.headers("mo", Role.MODERATOR))
    assert approved.json()["version"]["moderation"] == "awaiting_legal"
    signed = api.client.post(f"{url}/legal-signoff", json={}, headers=api.headers("lee", Role.LEGAL))
    assert signed.json()["version"]["moderation"] == "passed"
    again = api.client.post(f"{url}/approve", json={}, headers=api.headers("mo", Role.MODERATOR))
    assert again.status_code == 409 and "passed" in again.json()["detail"]


def test_a_blocked_upload_is_appealed_and_overridden_only_with_a_reason(api_factory):
    api = api_factory(MM_MODERATION_BLOCKED_TERMS="scamcoin")
    asset_id, done = _uploaded(api, b"Buy SCAMCOIN now\n")
    assert done.json()["version"]["moderation"] == "blocked"
    url = f"/assets/{asset_id}/versions/1"
    no_reason = api.client.post(f"{url}/appeal", json={}, headers=api.headers("erin", Role.EDITOR))
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["detail"]
    appeal = api.client.post(f"{url}/appeal", json={"reason": "satire"}, headers=api.headers("erin", Role.EDITOR))
    assert appeal.json()["version"]["moderation"] == "appealed"
    api.client.post(f"{url}/block", json={"reason": "not satire"}, headers=api.headers("mo", Role.MODERATOR))
    override = api.client.post(
        f"{url}/override", json={"reason": "legal cleared"}, headers=api.headers("mo", Role.MODERATOR)
    )
    assert override.json()["version"]["moderation"] == "passed"
    decisions = api.client.get(f"/assets/{asset_id}", headers=api.headers("mo", Role.MODERATOR)).json()["decisions"]
    assert [(d["action"], d["actor"], d["role"], d["reason"]) for d in decisions] == [
        ("appeal", "erin", "Editor", "satire"),
        ("block", "mo", "Moderator", "not satire"),
        ("override", "mo", "Moderator", "legal cleared"),
    ]


def test_uploads_that_are_not_what_was_declared_are_refused_and_nothing_is_lost(api):
    created = api.create("erin", Role.EDITOR, _png(), "image/png").json()
    asset_id = created["asset"]["asset_id"]
    assert api.put(created["upload"], _png((0, 0, 255))).status_code == 422  # same size, other bytes
    assert api.put(created["upload"], _png() + b"x").status_code == 413
    tampered = {**created["upload"], "url": created["upload"]["url"][:-4] + "0000"}
    assert api.put(tampered, _png()).status_code == 403
    complete = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    assert complete.status_code == 409 and "PUT it to the upload URL" in complete.json()["detail"]
    # A text file declared as a PNG: stored, then rejected on completion, the rejection audited.
    lying = b"not a picture at all"
    created = api.create("erin", Role.EDITOR, lying, "image/png").json()
    assert api.put(created["upload"], lying).status_code == 204
    asset_id = created["asset"]["asset_id"]
    rejected = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    assert rejected.status_code == 422
    assert rejected.json()["detail"].startswith("the upload was rejected: the file is text/plain")
    detail = api.client.get(f"/assets/{asset_id}", headers=api.headers("erin", Role.EDITOR)).json()
    assert detail["versions"][0]["upload_status"] == "rejected"
    assert "asset.upload_rejected" in [r["action"] for r in detail["audit"]]
    # A re-upload is version 2; version 1 keeps its record.
    good = _png()
    declared = {
        "filename": "promo.png",
        "size": len(good),
        "sha256": hashlib.sha256(good).hexdigest(),
        "content_type": "image/png",
    }
    v2 = api.client.post(f"/assets/{asset_id}/versions", json=declared, headers=api.headers("erin", Role.EDITOR))
    assert v2.status_code == 201 and v2.json()["version"]["version"] == 2
    assert api.put(v2.json()["upload"], good).status_code == 204
    done = api.client.post(f"/assets/{asset_id}/versions/2/complete", headers=api.headers("erin", Role.EDITOR))
    assert done.json()["version"]["moderation"] == "passed"
    versions = api.client.get(f"/assets/{asset_id}", headers=api.headers("erin", Role.EDITOR)).json()["versions"]
    assert [(v["version"], v["upload_status"]) for v in versions] == [(1, "rejected"), (2, "uploaded")]


def test_bad_requests_get_problem_documents_that_say_what_to_fix(api):
    declared = json.loads(api.create("erin", Role.EDITOR, b"x").request.content)
    declared["file"]["size"] = api.settings.upload_max_bytes + 1
    big = api.client.post("/assets", json=declared, headers=api.headers("erin", Role.EDITOR))
    assert big.status_code == 413 and "over the limit" in big.json()["detail"]
    assert big.headers["content-type"] == "application/problem+json"
    declared["file"]["size"] = 1
    declared["license"]["territories"] = ["Germany"]
    invalid = api.client.post("/assets", json=declared, headers=api.headers("erin", Role.EDITOR)).json()
    assert invalid["status"] == 422 and invalid["errors"][0]["field"] == "body.license.territories.0"
    declared["license"]["territories"] = ["DE"]
    declared["creator_id"] = "nobody"
    unknown = api.client.post("/assets", json=declared, headers=api.headers("erin", Role.EDITOR)).json()
    assert unknown["status"] == 422 and "not a known creator" in unknown["detail"]
    missing = api.client.get("/assets/ast_missing", headers=api.headers("erin", Role.EDITOR))
    assert missing.status_code == 404 and "GET /assets" in missing.json()["detail"]
    assert api.client.get("/nowhere").json()["detail"].startswith("no such endpoint")
    broken = api.client.post(
        "/assets",
        content=b"{not json",
        headers={**api.headers("erin", Role.EDITOR), "content-type": "application/json"},
    )
    assert broken.status_code == 422 and "Traceback" not in broken.text


def test_takedown_and_legal_hold_are_audited_and_only_for_their_roles(api):
    asset_id, _ = _uploaded(api, CLEAN)
    hold = {"hold": True, "reason": "matter 2026-114"}
    assert (
        api.client.post(
            f"/assets/{asset_id}/legal-hold", json=hold, headers=api.headers("mo", Role.MODERATOR)
        ).status_code
        == 403
    )
    placed = api.client.post(f"/assets/{asset_id}/legal-hold", json=hold, headers=api.headers("lee", Role.LEGAL))
    assert placed.json()["asset"]["legal_hold"] is True
    twice = api.client.post(f"/assets/{asset_id}/legal-hold", json=hold, headers=api.headers("lee", Role.LEGAL))
    assert twice.status_code == 409
    down = api.client.post(
        f"/assets/{asset_id}/takedown", json={"reason": "licensor withdrew"}, headers=api.headers("mo", Role.MODERATOR)
    )
    assert down.status_code == 200 and down.json()["asset"]["taken_down_at"]
    detail = api.client.get(f"/assets/{asset_id}", headers=api.headers("lee", Role.LEGAL)).json()
    assert detail["versions"][0]["moderation"] == "taken_down"
    actions = [r["action"] for r in detail["audit"]]
    assert "moderation.takedown" in actions and "legal.hold_placed" in actions
    reupload = api.client.post(
        f"/assets/{asset_id}/versions",
        json={"filename": "a.txt", "size": 1, "sha256": "0" * 64, "content_type": "text/plain"},
        headers=api.headers("erin", Role.EDITOR),
    )
    assert reupload.status_code == 409 and "taken down" in reupload.json()["detail"]


def test_on_s3_the_client_uploads_to_a_presigned_url_and_a_different_file_never_becomes_a_version(s3_api, s3_store):
    api = s3_api
    s3_store.client.put_bucket_versioning(Bucket=s3_store.bucket, VersioningConfiguration={"Status": "Enabled"})
    created = api.create("erin", Role.EDITOR, CLEAN).json()
    upload = created["upload"]
    assert upload["url"].startswith("http") and "X-Amz-Signature" in upload["url"]
    assert upload["headers"]["x-amz-checksum-sha256"]
    impostor = CLEAN.replace(b"Lisbon", b"Madrid")  # same length, other bytes
    assert api.put(upload, impostor).status_code == 400  # the server checks the signed x-amz-checksum-sha256
    asset_id = created["asset"]["asset_id"]
    complete = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    assert complete.status_code == 409  # nothing was stored
    fresh = api.client.post(f"/assets/{asset_id}/versions/1/upload-url", headers=api.headers("erin", Role.EDITOR))
    assert api.put(fresh.json()["upload"], CLEAN).status_code == 200
    done = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    assert done.status_code == 200 and done.json()["version"]["moderation"] == "passed"
    assert done.json()["version"]["object_version_id"]  # the S3 version the record points at
