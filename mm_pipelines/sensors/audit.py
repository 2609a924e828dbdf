"""Exports of the audit chain: mirrored to Kafka (when the event bus is Kafka) and sealed in the archive."""

from urllib.parse import urlsplit

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

from mm_pipelines.audit import export
from mm_pipelines.config import Settings
from mm_pipelines.resources import EventBusResource, PostgresResource
from mm_pipelines.stores.objects import open_object_store


def _mirrors_to_kafka(event_bus: EventBusResource) -> bool:
    return urlsplit(event_bus.url or Settings.from_env().event_bus_url).scheme == "kafka"


def _sinks(event_bus: EventBusResource) -> tuple[str, ...]:
    return (export.KAFKA, export.ARCHIVE) if _mirrors_to_kafka(event_bus) else (export.ARCHIVE,)


@op
def export_audit_chain(context: OpExecutionContext, postgres: PostgresResource, event_bus: EventBusResource) -> None:
    """Mirror the new audit records to Kafka (when MM_EVENT_BUS is Kafka), then seal them in MM_AUDIT_ARCHIVE."""
    settings = Settings.from_env()
    with postgres.get_db().connect() as conn:
        if _mirrors_to_kafka(event_bus):
            bus = event_bus.open()
            try:
                produced = export.mirror_to_kafka(conn, bus, settings.audit_topic)
            finally:
                bus.close()
            context.log.info(f"{produced} audit record(s) mirrored to {settings.audit_topic}")
        archive = open_object_store(settings.audit_archive_url)
        sealed = export.seal_segments(conn, archive, retain_days=settings.audit_retention_days)
    context.log.info(f"{len(sealed)} audit segment(s) sealed in {settings.audit_archive_url}: {', '.join(sealed)}")


@job
def audit_export_job():
    """Take the audit chain's new records to its Kafka mirror and its write-once archive."""
    export_audit_chain()


@sensor(job=audit_export_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.RUNNING)
def audit_export_sensor(context: SensorEvaluationContext, postgres: PostgresResource, event_bus: EventBusResource):
    """A run whenever the mirror or the archive is behind the chain; one run key per newest seq."""
    sinks = _sinks(event_bus)
    with postgres.get_db().connect() as conn:
        newest = export.pending(conn, sinks)
    if newest is None:
        return SkipReason(f"Every audit record is in the {' and the '.join(sinks)} export")
    return RunRequest(run_key=f"audit-export:{newest}", tags={"mm/audit-seq": str(newest)})
