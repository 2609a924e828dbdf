"""The events sensor: turns new offsets on the bus into ingestion runs over bounded offset ranges.

One run per tick takes the next range of every partition (not one run per partition): a Dagster run
costs seconds of process start-up, and on two cores one run per partition per tick fell behind a
2,000 events/s stream (p95 86 s from produce to raw); see benchmarks/latency_kafka.py."""


import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from mm_pipelines.events.bus import EventBusError
from mm_pipelines.events.ingest import ingested_offsets, pending_ranges
from mm_pipelines.jobs import ingest_job
from mm_pipelines.resources import ClickHouseResource, EventBusResource

MAX_RANGE = 500_000


def plan_runs(topic: str, cursor: dict[int, int], ingested: dict[int, int], ends: dict[int, int], max_range: int):
    """Run requests for everything past both the cursor and what is ingested.

    Run k takes the k-th bounded range of each partition; its key names every range it takes
    (`<topic>:<partition>:<start>-<end>;…`), so a re-evaluated tick can never launch it twice."""
    start = {p: max(cursor.get(p, 0), ingested.get(p, 0)) for p in ends}
    rounds: list[dict[int, tuple[int, int]]] = []
    for p, s, e in pending_ranges(start, ends, max_range):
        taken = sum(1 for r in rounds if p in r)
        if taken == len(rounds):
            rounds.append({})
        rounds[taken][p] = (s, e)
    requests = [
        RunRequest(
            run_key=f"{topic}:" + ";".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(r.items())),
            run_config={"ops": {"raw__events": {"config": {"up_to": {str(p): e for p, (_, e) in r.items()}, "max_batch": max_range}}}},
            tags={"mm/topic": topic, "mm/ranges": ";".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(r.items()))},
        )
        for r in rounds
    ]
    next_cursor = {**start, **{p: e for r in rounds for p, (_, e) in r.items()}}
    return requests, next_cursor


@sensor(job=ingest_job, minimum_interval_seconds=5, default_status=DefaultSensorStatus.RUNNING)
def raw_events_sensor(context: SensorEvaluationContext, clickhouse: ClickHouseResource, event_bus: EventBusResource):
    topic = event_bus.events_topic()
    bus = event_bus.open()
    try:
        ends = bus.end_offsets(topic)
    except EventBusError as e:
        return SkipReason(str(e))
    finally:
        bus.close()
    # Read-only every tick: the ingestion run creates the raw tables; before that nothing is ingested.
    with clickhouse.get_warehouse().session(context.log.info) as s:
        ingested = ingested_offsets(s, topic) if s.scalar("EXISTS TABLE raw.ingested_ranges") else {}
    cursor = {int(k): v for k, v in json.loads(context.cursor or "{}").items()}
    requests, next_cursor = plan_runs(topic, cursor, ingested, ends, MAX_RANGE)
    context.update_cursor(json.dumps({str(k): v for k, v in next_cursor.items()}))
    if not requests:
        return SkipReason(f"No new events on {topic}")
    return requests
