"""Ingestion: event bus offset ranges → raw.events (and raw.dead_letters) in the analytics store."""

from collections.abc import Iterable
from datetime import date

from dagster import AssetExecutionContext, AssetMaterialization, Config, MaterializeResult, MetadataValue, asset

from mm_pipelines.assets.automation import EVENTS_BY_DAY_KEY
from mm_pipelines.assets.partitions import DAILY_PARTITIONS
from mm_pipelines.events.ingest import ingest_pending
from mm_pipelines.resources import ClickHouseResource, EventBusResource, ObjectStoreResource

RAW_EVENTS_KEY = ["raw", "events"]


class IngestConfig(Config):
    """Empty `up_to`: ingest everything pending. Otherwise partition -> offset to ingest up to."""

    up_to: dict[str, int] = {}
    max_batch: int = 500_000


@asset(
    key=RAW_EVENTS_KEY,
    group_name="ingest",
    kinds={"clickhouse"},
    description=(
        "Canonical events from the event bus, validated in ClickHouse; invalid ones go to raw.dead_letters. "
        "Every range is archived as Parquet (raw/events/date=…) in the object store. A bus that cannot be reached "
        "fails the step; a topic nothing was produced to yet is nothing to ingest. The days the events are dated "
        "on (late ones too) are recorded as partitions of staging/events_by_day."
    ),
)
def raw_events(
    context: AssetExecutionContext,
    config: IngestConfig,
    clickhouse: ClickHouseResource,
    event_bus: EventBusResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    bus = event_bus.open()
    try:
        run = ingest_pending(
            clickhouse.get_warehouse(),
            bus,
            event_bus.events_topic(),
            config.max_batch,
            archive=object_store.open(),
            up_to={int(p): end for p, end in config.up_to.items()} or None,
            log=context.log.info,
        )
    finally:
        bus.close()
    mark_event_days(context, run.dates)
    return MaterializeResult(
        metadata={
            "topic": run.topic,
            "ranges": MetadataValue.json([f"{run.topic}:{p}:{s}-{e}" for p, s, e in run.ranges]),
            "events": run.events,
            "dead_letters": run.dead_letters,
            "event_dates": MetadataValue.json(sorted(d.isoformat() for d in run.dates)),
            "throughput_events_per_s": round(run.messages_per_s, 1),
            "seconds": MetadataValue.json({k: round(v, 3) for k, v in run.seconds.items()}),
            "consumer_lag": MetadataValue.json({str(p): lag for p, lag in run.lag.items()}),
        }
    )


def mark_event_days(context: AssetExecutionContext, event_days: Iterable[date]) -> None:
    """A materialization of staging/events_by_day per day that received events: the daily models of those days
    (and of the days whose lookback reaches them) go stale, and automation restages and rebuilds them."""
    known = set(DAILY_PARTITIONS.get_partition_keys())
    outside = []
    for day in sorted(d.isoformat() for d in event_days):
        if day in known:
            context.log_event(AssetMaterialization(EVENTS_BY_DAY_KEY, partition=day))
        else:
            outside.append(day)
    if outside:
        context.log.warning(
            f"{len(outside)} event day(s) outside the daily partitions (first {outside[0]}): "
            "kept in raw.events, not staged (a dbt build without a range, `mm-dbt build`, stages every day)"
        )
