"""Derivatives of completed uploads: the sensor asks Postgres what is pending; the job makes, stores, records."""

from __future__ import annotations

import hashlib
import io

import psycopg
import pytest
from dagster import DagsterInstance, build_sensor_context
from PIL import Image

from mm_pipelines.audit import chain
from mm_pipelines.identity.roles import Role
from mm_pipelines.media.artifacts import pending_versions

pytestmark = pytest.mark.integration


def _png(size=(1600, 900)) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, "PNG")
    return out.getvalue()


def _uploaded(api, data: bytes, content_type: str, **fields) -> str:
    created = api.create("erin", Role.EDITOR, data, content_type, **fields)
    assert created.status_code == 201, created.text
    body = created.json()
    assert api.put(body["upload"], data).status_code in (200, 204)
    asset_id = body["asset"]["asset_id"]
    done = api.client.post(f"/assets/{asset_id}/versions/1/complete", headers=api.headers("erin", Role.EDITOR))
    assert done.status_code == 200 and done.json()["version"]["upload_status"] == "uploaded", done.text
    return asset_id


def _tick(defs, instance):
    """One evaluation of the sensor, with the code location's resources (as the daemon runs it)."""
    sensor = defs.resolve_sensor_def("media_derivatives_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, resources=defs.resources))


def test_an_uploaded_image_gets_one_run_that_stores_records_and_audits_its_thumbnail_once(mm_home, api):
    from mm_pipelines.config import Settings
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.resources import build_resources

    _uploaded(api, b"Spring collection, shot in Lisbon.\n", "text/plain")
    image = _png()
    asset_id = _uploaded(api, image, "image/png")
    defs = build_definitions()
    instance = DagsterInstance.ephemeral()

    [request] = _tick(defs, instance).run_requests  # the text file is not asked for
    assert request.run_key == f"derivatives:{asset_id}:v1"
    assert request.run_config == {"ops": {"make_media_derivatives": {"config": {"asset_id": asset_id, "version": 1}}}}

    resources = build_resources(Settings.from_env())
    job = defs.resolve_job_def("media_derivatives_job")
    result = job.execute_in_process(run_config=request.run_config, resources=resources, instance=instance)
    assert result.success

    key = f"assets/{asset_id}/v1/derivatives/thumbnail.jpg"
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT kind, object_key, content_type, size, sha256, run_id FROM media_artifacts WHERE asset_id = %s",
            (asset_id,),
        ).fetchall()
        [(kind, object_key, content_type, size, sha256, run_id)] = rows
        assert (kind, object_key, content_type, run_id) == ("thumbnail", key, "image/jpeg", result.run_id)
        [record] = [r for r in chain.records(conn, f"asset:{asset_id}") if r.action == "asset.derivative_created"]
        assert (record.actor, record.role, record.object) == ("media_derivatives_job", "system", f"asset:{asset_id}/v1")
        assert record.details == {"kind": "thumbnail", "object_key": key, "sha256": sha256}
        assert chain.verify(conn)[1] == []
        assert pending_versions(conn, 10) == []

    objects = resources["object_store"].open()
    assert objects.exists(key)
    data = objects.get_bytes(key)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
    thumb = Image.open(io.BytesIO(data))
    assert (thumb.format, thumb.size) == ("JPEG", (320, 180))

    again = _tick(defs, instance)
    assert not again.run_requests and "without derivatives" in again.skip_message

    rerun = job.execute_in_process(run_config=request.run_config, resources=resources, instance=instance)
    assert rerun.success
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM media_artifacts").fetchone()[0] == 1
        audited = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'asset.derivative_created'").fetchone()
        assert audited[0] == 1
    assert objects.get_bytes(key) == data


def test_a_text_upload_requests_no_run(mm_home, api):
    from mm_pipelines.definitions import build_definitions

    _uploaded(api, b"Spring collection, shot in Lisbon.\n", "text/plain")
    tick = _tick(build_definitions(), DagsterInstance.ephemeral())
    assert not tick.run_requests and tick.skip_message.startswith("No uploaded image")


def test_newest_uploads_come_first_and_blocked_ones_get_no_derivatives(mm_home, api_factory):
    from mm_pipelines.config import Settings
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.resources import build_resources

    api = api_factory(MM_MODERATION_BLOCKED_TERMS="scamcoin")
    older = _uploaded(api, _png((40, 30)), "image/png")
    newer = _uploaded(api, _png((50, 30)), "image/png")
    blocked = _uploaded(api, _png((60, 30)), "image/png", title="Buy SCAMCOIN now")
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        state = conn.execute("SELECT moderation FROM media_asset_versions WHERE asset_id = %s", (blocked,)).fetchone()
        assert state == ("blocked",)
        # An older version whose run failed stays pending; newest first, it cannot keep a new upload waiting.
        assert pending_versions(conn, 1) == [(newer, 1)]
        assert pending_versions(conn, 10) == [(newer, 1), (older, 1)]

    job = build_definitions().resolve_job_def("media_derivatives_job")
    config = {"ops": {"make_media_derivatives": {"config": {"asset_id": blocked, "version": 1}}}}
    resources = build_resources(Settings.from_env())
    assert job.execute_in_process(run_config=config, resources=resources, instance=DagsterInstance.ephemeral()).success
    with psycopg.connect(api.settings.postgres_dsn) as conn:  # asked for before it was blocked: still nothing made
        assert conn.execute("SELECT count(*) FROM media_artifacts").fetchone() == (0,)
