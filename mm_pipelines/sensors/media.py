"""Derivatives of completed uploads: one run per uploaded image or video that has none yet."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from mm_pipelines.assets.media import media_derivatives_job
from mm_pipelines.media import artifacts, derivatives
from mm_pipelines.resources import PostgresResource

PENDING_PER_TICK = 100


@sensor(job=media_derivatives_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def media_derivatives_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    """Postgres says what is still pending, so no cursor; the run key makes a version's run start once."""
    # Without ffmpeg a video's run makes nothing: asking for it on every tick would crowd out the images.
    prefixes = artifacts.MEDIA_PREFIXES if derivatives.ffmpeg_available() else ("image/",)
    with postgres.get_db().connect() as conn:
        pending = artifacts.pending_versions(conn, PENDING_PER_TICK, prefixes)
    if not pending:
        return SkipReason(f"No uploaded {' or '.join(p.rstrip('/') for p in prefixes)} version without derivatives")
    return [
        RunRequest(
            run_key=f"derivatives:{asset_id}:v{version}",
            run_config={"ops": {"make_media_derivatives": {"config": {"asset_id": asset_id, "version": version}}}},
            tags={"mm/asset": asset_id},
        )
        for asset_id, version in pending
    ]
