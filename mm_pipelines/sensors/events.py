"""The events sensor: turns new offsets on the bus into platform runs that ingest them and bring today's attribution
up to date, one run at a time.

A run takes the next range of every partition (not one run per partition: a Dagster run costs seconds of process
start-up), then stages the events and rebuilds today's daily partitions (with the reprocessing window before it) in
the same process: platform_job's daily assets only, two dbt commands. The unpartitioned models (seeds, spend,
sales) follow their own loads; a run includes them only while they were never built. While it is in flight the
sensor waits, and the next run takes everything that arrived meanwhile: one run start and one pass of each dbt
model per cycle, where separate ingestion, staging and attribution runs cost three starts and kept blocking each
other (p95 172 s from a produced conversion to its credits; benchmarks/latency_attribution.py). Older days a late
event touched are left to the automation sensor."""

import json
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from mm_pipelines.assets.ingest import RAW_EVENTS_KEY
from mm_pipelines.events.ingest import ingested_offsets, pending_ranges
from mm_pipelines.jobs import PLATFORM_SELECTION, platform_job
from mm_pipelines.resources import ClickHouseResource, EventBusResource
from mm_pipelines.stores.bus import EventBusError

MAX_RANGE = 500_000
STALE_AFTER = timedelta(minutes=15)
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def plan_runs(
    topic: str,
    cursor: dict[int, int],
    ingested: dict[int, int],
    ends: dict[int, int],
    max_range: int,
    max_runs: int | None = None,
    partition_key: str | None = None,
):
    """Run requests (for `partition_key`) for everything past both the cursor and what is ingested: at most
    `max_runs`, the cursor then stops where they do.

    Run k takes the k-th bounded range of each partition; its key names every range it takes
    (`<topic>:<partition>:<start>-<end>;…`), so a re-evaluated tick can never launch it twice."""
    start = {p: max(cursor.get(p, 0), ingested.get(p, 0)) for p in ends}
    rounds: list[dict[int, tuple[int, int]]] = []
    for p, s, e in pending_ranges(start, ends, max_range):
        taken = sum(1 for r in rounds if p in r)
        if taken == len(rounds):
            rounds.append({})
        rounds[taken][p] = (s, e)
    rounds = rounds[:max_runs]
    requests = [
        RunRequest(
            run_key=f"{topic}:" + ";".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(r.items())),
            run_config={
                "ops": {
                    "raw__events": {"config": {"up_to": {str(p): e for p, (_, e) in r.items()}, "max_batch": max_range}}
                }
            },
            tags={"mm/topic": topic, "mm/ranges": ";".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(r.items()))},
            partition_key=partition_key,
        )
        for r in rounds
    ]
    next_cursor = {**start, **{p: e for r in rounds for p, (_, e) in r.items()}}
    return requests, next_cursor


def live_selection(context: SensorEvaluationContext) -> tuple[list[AssetKey], list[AssetCheckKey]]:
    """platform_job's assets a live run builds, and their checks: ingestion and the daily assets, and any other
    asset of the job not built yet (what the daily models read must exist: a new deployment's first run builds
    it); every check of those but the ones that run on their own automation condition (the Great Expectations
    suites, QUALITY_CHECK_CADENCE), as Dagster leaves those out of the runs automation launches."""
    graph = context.repository_def.asset_graph
    keys = [k for k in PLATFORM_SELECTION.resolve(graph) if graph.get(k).is_materializable]
    latest = context.instance.get_latest_materialization_events(keys)
    assets = sorted(
        k
        for k in keys
        if k == AssetKey(RAW_EVENTS_KEY) or graph.get(k).partitions_def is not None or latest.get(k) is None
    )
    checks = sorted(
        (k for k in graph.get_check_keys_for_assets(set(assets)) if graph.get(k).automation_condition is None),
        key=lambda k: k.to_user_string(),
    )
    return assets, checks


@sensor(job=platform_job, minimum_interval_seconds=2, default_status=DefaultSensorStatus.RUNNING)
def raw_events_sensor(context: SensorEvaluationContext, clickhouse: ClickHouseResource, event_bus: EventBusResource):
    topic = event_bus.events_topic()
    # A run whose worker died without a word stays "started"; after STALE_AFTER it no longer holds ingestion
    # back (an overlap is safe: ranges are ingested exactly once, partitions rebuilt idempotently).
    in_flight = context.instance.get_run_records(
        RunsFilter(
            job_name=platform_job.name,
            statuses=IN_FLIGHT,
            tags={"mm/topic": topic},
            created_after=datetime.now(UTC) - STALE_AFTER,
        ),
        limit=1,
    )
    if in_flight:
        return SkipReason(
            f"Run {in_flight[0].dagster_run.run_id} is in flight; the next run takes what arrives meanwhile"
        )
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
    today = datetime.now(UTC).date().isoformat()
    requests, next_cursor = plan_runs(topic, cursor, ingested, ends, MAX_RANGE, max_runs=1, partition_key=today)
    context.update_cursor(json.dumps({str(k): v for k, v in next_cursor.items()}))
    if not requests:
        return SkipReason(f"No new events on {topic}")
    assets, checks = live_selection(context)
    return [r.with_replaced_attrs(asset_selection=assets, asset_check_keys=checks) for r in requests]
