"""SentinelNet submissions that did not get through (an outage, a rate limit): resent until SentinelNet takes them."""

from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)

from mm_pipelines.config import Settings
from mm_pipelines.moderation import service as moderation
from mm_pipelines.moderation.sentinelnet import SentinelNetClient
from mm_pipelines.resources import PostgresResource


@op
def send_unsent_scans(context: OpExecutionContext, postgres: PostgresResource) -> None:
    settings = Settings.from_env()
    key = settings.sentinelnet_api_key.get_secret_value() if settings.sentinelnet_api_key else ""
    client = SentinelNetClient(settings.sentinelnet_url, key)
    with postgres.get_db().connect() as conn:
        counts = moderation.send_scans(conn, client, settings.api_public_url.rstrip("/") + "/webhooks/sentinelnet")
    context.log.info(f"SentinelNet submissions: {counts}")


@job
def sentinelnet_submission_job():
    """Send SentinelNet the pre-publish scans it has not accepted yet."""
    send_unsent_scans()


@sensor(job=sentinelnet_submission_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def sentinelnet_submission_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    """A resend whenever scans are due and SentinelNet is configured; one run key per due set and minute."""
    if not Settings.from_env().sentinelnet_url:
        return SkipReason("MM_SENTINELNET_URL is not set: the built-in scanner takes scans in process")
    with postgres.get_db().connect() as conn:
        waiting = moderation.unsent_scans(conn)
    if not waiting:
        return SkipReason("No SentinelNet submission is due")
    return RunRequest(
        run_key=f"sentinelnet-resend:{datetime.now(UTC):%Y-%m-%dT%H:%M}", tags={"mm/unsent": str(waiting)}
    )
