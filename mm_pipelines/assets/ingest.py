"""Ingestion: event bus offset ranges → raw.events (and raw.dead_letters) in the analytics store."""


import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from mm_pipelines.events.bus import EventBusError
from mm_pipelines.events.ingest import (
    ensure_raw_tables,
    ingest_batch,
    ingested_offsets,
    open_intents,
    pending_ranges,
    record_intent,
)
from mm_pipelines.resources import ClickHouseResource, EventBusResource, ObjectStoreResource

RAW_EVENTS_KEY = ["raw", "events"]


class IngestConfig(Config):
    """Without a partition, ingest everything pending; with one, up to `end` of that partition."""

    partition: int | None = None
    end: int | None = None
    max_batch: int = 500_000


@asset(
    key=RAW_EVENTS_KEY,
    group_name="ingest",
    kinds={"clickhouse"},
    description=(
        "Canonical events from the event bus, validated in ClickHouse; invalid ones go to raw.dead_letters. "
        "Every range is archived as Parquet (raw/events/date=…) in the object store."
    ),
)
def raw_events(
    context: AssetExecutionContext,
    config: IngestConfig,
    clickhouse: ClickHouseResource,
    event_bus: EventBusResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    warehouse = clickhouse.get_warehouse()
    archive = object_store.open()
    bus = event_bus.open()
    topic = event_bus.events_topic()
    try:
        with warehouse.session(context.log.info) as s:
            ensure_raw_tables(s)
            done = ingested_offsets(s, topic)
            intents = open_intents(s, topic)
        try:
            ends = bus.end_offsets(topic)
        except EventBusError as e:
            context.log.warning(f"Nothing to ingest: {e}")
            ends = {}
        if config.partition is not None:
            # A range always starts where the partition's ingestion stopped, so boundaries stay
            # contiguous whichever run gets there first; a range already covered is a no-op.
            ends = {config.partition: min(config.end or ends.get(config.partition, 0), ends.get(config.partition, 0))}
            done = {config.partition: done.get(config.partition, 0)}
        ranges = pending_ranges(done, ends, config.max_batch, intents)
        totals = {"events": 0, "dead_letters": 0, "fetch_s": 0.0, "land_s": 0.0, "validate_insert_s": 0.0, "archive_s": 0.0}
        dates: set = set()
        started = time.perf_counter()
        for partition, start, end in ranges:
            with warehouse.session(context.log.info) as s:
                record_intent(s, topic, partition, start, end)
            t0 = time.perf_counter()
            batch = bus.read_range(topic, partition, start, end)
            totals["fetch_s"] += time.perf_counter() - t0
            with warehouse.session(context.log.info) as s:
                result = ingest_batch(s, batch, archive)
            totals["events"] += result.events
            totals["dead_letters"] += result.dead_letters
            totals["land_s"] += result.seconds["land"]
            totals["validate_insert_s"] += result.seconds["validate_insert"]
            totals["archive_s"] += result.seconds.get("archive", 0.0)
            dates.update(result.dates)
            context.log.info(
                f"{topic}[{partition}] {start}-{end}: {result.events} events, {result.dead_letters} dead letters"
            )
        elapsed = time.perf_counter() - started
        lag = {str(p): ends[p] - max(done.get(p, 0), max((e for q, _, e in ranges if q == p), default=0)) for p in ends}
    finally:
        bus.close()
    messages = totals["events"] + totals["dead_letters"]
    return MaterializeResult(
        metadata={
            "topic": topic,
            "ranges": MetadataValue.json([f"{topic}:{p}:{s}-{e}" for p, s, e in ranges]),
            "events": totals["events"],
            "dead_letters": totals["dead_letters"],
            "event_dates": MetadataValue.json(sorted(d.isoformat() for d in dates)),
            "throughput_events_per_s": round(messages / elapsed, 1) if elapsed > 0 and messages else 0.0,
            "seconds": MetadataValue.json({k: round(v, 3) for k, v in totals.items() if k.endswith("_s")}),
            "consumer_lag": MetadataValue.json(lag),
        }
    )
