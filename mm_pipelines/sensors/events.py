"""The events sensor: turns new offsets on the bus into one ingestion run per bounded range."""


import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from mm_pipelines.events.bus import EventBusError
from mm_pipelines.events.ingest import ensure_raw_tables, ingested_offsets, pending_ranges
from mm_pipelines.jobs import ingest_job
from mm_pipelines.resources import ClickHouseResource, EventBusResource

MAX_RANGE = 500_000


def plan_runs(topic: str, cursor: dict[int, int], ingested: dict[int, int], ends: dict[int, int], max_range: int):
    """Run requests for everything past both the cursor and what is ingested; deterministic run keys."""
    start = {p: max(cursor.get(p, 0), ingested.get(p, 0)) for p in ends}
    ranges = pending_ranges(start, ends, max_range)
    requests = [
        RunRequest(
            run_key=f"{topic}:{p}:{s}-{e}",
            run_config={"ops": {"raw__events": {"config": {"partition": p, "end": e, "max_batch": max_range}}}},
            tags={"mm/topic": topic, "mm/partition": str(p), "mm/range": f"{s}-{e}"},
        )
        for p, s, e in ranges
    ]
    next_cursor = {**start, **{p: e for p, _, e in ranges}}
    return requests, next_cursor


@sensor(job=ingest_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def raw_events_sensor(context: SensorEvaluationContext, clickhouse: ClickHouseResource, event_bus: EventBusResource):
    topic = event_bus.events_topic()
    bus = event_bus.open()
    try:
        ends = bus.end_offsets(topic)
    except EventBusError as e:
        return SkipReason(str(e))
    finally:
        bus.close()
    with clickhouse.get_warehouse().session(context.log.info) as s:
        ensure_raw_tables(s)
        ingested = ingested_offsets(s, topic)
    cursor = {int(k): v for k, v in json.loads(context.cursor or "{}").items()}
    requests, next_cursor = plan_runs(topic, cursor, ingested, ends, MAX_RANGE)
    context.update_cursor(json.dumps({str(k): v for k, v in next_cursor.items()}))
    if not requests:
        return SkipReason(f"No new events on {topic}")
    return requests
