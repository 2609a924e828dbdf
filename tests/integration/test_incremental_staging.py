"""Staging per day: after batches, redeliveries, late events and a conflicting redelivery, the days built one
run at a time (as automation requests them) hold exactly what one build of every day holds."""

from datetime import UTC, date, datetime

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, evaluate_automation_conditions

from mm_pipelines.events.generator import generate_events
from mm_pipelines.jobs import PLATFORM_SELECTION
from mm_pipelines.platform import Platform

from .events import produce
from .runs import execute

pytestmark = pytest.mark.integration

RAW_EVENTS = AssetSelection.assets(AssetKey(["raw", "events"]))
STG_EVENTS_KEY = AssetKey(["staging", "stg_events"])
DAILY = AssetSelection.tag("partitioning", "daily")
# Every daily model a batch changes, keyed as each is sorted.
TABLES = {
    "staging.stg_events": "event_id",
    "intermediate.int_conversions": "conversion_id",
    "intermediate.int_conversion_paths": "conversion_id",
    "marts.campaign_performance_daily": "event_date, channel, campaign_id",
    "marts.attribution_credits": "conversion_id, model, touch_index",
}


def span(days: set[str]) -> tuple[date, date]:
    return date.fromisoformat(min(days)), date.fromisoformat(max(days))


def snapshot(platform) -> dict[str, list[tuple]]:
    return {t: platform.warehouse.query_rows(f"SELECT * FROM {t} ORDER BY {key}") for t, key in TABLES.items()}


def test_days_built_run_by_run_equal_one_build_of_every_day(mm_home):
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    instance = DagsterInstance.ephemeral()
    platform = Platform.from_env()
    first = generate_events(events=2000, seed=31, start=datetime(2026, 10, 1, tzinfo=UTC), days=4)
    produce(platform, first)
    execute(defs, instance, PLATFORM_SELECTION, (date(2026, 10, 1), date(2026, 10, 4)))
    cursor = evaluate_automation_conditions(defs, instance).cursor

    # Then: a producer retry of 300 events, late events for 2026-10-04, new days, and an event of 2026-10-01
    # redelivered dated 2026-10-05 (against the contract): it must still count once, on its first delivery's day,
    # which this run does not restage (its range starts two days before 2026-10-04).
    retried = [e for e in first if e["occurred_at"].startswith("2026-10-04")][:300]
    late = generate_events(events=150, seed=32, start=datetime(2026, 10, 4, tzinfo=UTC), days=1)
    new = generate_events(events=600, seed=33, start=datetime(2026, 10, 5, tzinfo=UTC), days=2)
    conflicting = {
        **next(e for e in first if e["occurred_at"].startswith("2026-10-01")),
        "occurred_at": "2026-10-05T09:00:00.000Z",
    }
    second = [*retried, *late, *new, conflicting]
    produce(platform, second)
    execute(defs, instance, RAW_EVENTS)

    # The days automation asks to restage, and the days it asks to rebuild paths for; run as its backfill runs
    # them: staging first, over a few days (only their event ids are looked up), then every day reading them.
    tick = evaluate_automation_conditions(defs, instance, cursor=cursor)
    restaged = tick.get_requested_partitions(STG_EVENTS_KEY)
    assert restaged == {e["occurred_at"][:10] for e in second}
    rebuilt = tick.get_requested_partitions(AssetKey(["intermediate", "int_conversion_paths"]))
    assert min(rebuilt) == min(restaged) and len(rebuilt) > len(restaged)
    execute(defs, instance, PLATFORM_SELECTION & DAILY, span(restaged))
    execute(defs, instance, PLATFORM_SELECTION & DAILY - AssetSelection.assets(STG_EVENTS_KEY), span(rebuilt))
    incremental = snapshot(platform)

    ids = {e["event_id"] for e in [*first, *late, *new]}
    events = platform.warehouse.query_rows("SELECT event_id, event_date FROM staging.stg_events")
    assert len(events) == len(ids) and {i for i, _ in events} == ids
    assert dict(events)[conflicting["event_id"]] == date(2026, 10, 1)

    # One build of every day, from nothing.
    with platform.warehouse.session() as s:
        for table in TABLES:
            s.command(f"DROP TABLE {table}")
    execute(defs, instance, PLATFORM_SELECTION & DAILY, (date(2026, 10, 1), date(2026, 10, 6)))
    assert snapshot(platform) == incremental
