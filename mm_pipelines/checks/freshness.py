"""Freshness of raw.events: is ingestion keeping up with the event bus?"""

from datetime import UTC, datetime

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from mm_pipelines.assets.ingest import raw_events
from mm_pipelines.config import Settings
from mm_pipelines.events.ingest import ingested_offsets
from mm_pipelines.resources import ClickHouseResource, EventBusResource
from mm_pipelines.stores.bus import EventBusError
from mm_pipelines.stores.warehouse_tables import ensure_tables


def freshness_verdict(
    lag: dict[int, int], minutes_since_ingest: float | None, limit_minutes: float
) -> tuple[bool, str]:
    """Fresh when nothing waits on the bus, or the last ingestion is recent enough to be catching up."""
    waiting = sum(lag.values())
    if waiting == 0:
        return True, "caught up with the event bus"
    if minutes_since_ingest is not None and minutes_since_ingest <= limit_minutes:
        return True, f"{waiting:,} messages waiting; last ingestion {minutes_since_ingest:.1f} min ago"
    since = "never ingested" if minutes_since_ingest is None else f"last ingestion {minutes_since_ingest:.1f} min ago"
    return False, f"{waiting:,} messages waiting on the bus and {since} (limit {limit_minutes:g} min)"


@asset_check(
    asset=raw_events,
    description="Ingestion keeps up: no messages wait on the bus longer than MM_RAW_FRESHNESS_MINUTES (15).",
)
def raw_events_freshness_check(clickhouse: ClickHouseResource, event_bus: EventBusResource) -> AssetCheckResult:
    topic = event_bus.events_topic()
    bus = event_bus.open()
    try:
        ends = bus.end_offsets(topic)
    except EventBusError:
        ends = {}
    finally:
        bus.close()
    with clickhouse.get_warehouse().session() as s:
        ensure_tables(s)
        done = ingested_offsets(s, topic)
        last = s.scalar("SELECT max(ingested_at) FROM raw.ingested_ranges WHERE topic = {t:String}", {"t": topic})
    lag = {p: end - done.get(p, 0) for p, end in ends.items()}
    minutes = None
    if last is not None and last.year > 1970:
        minutes = (datetime.now(UTC) - last.replace(tzinfo=UTC)).total_seconds() / 60
    limit = Settings.from_env().raw_freshness_minutes
    passed, description = freshness_verdict(lag, minutes, limit)
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "consumer_lag": MetadataValue.json({str(p): v for p, v in lag.items()}),
            "messages_waiting": sum(lag.values()),
        },
    )
