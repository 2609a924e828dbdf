"""Late events: the days they land on, and the days whose lookback reaches them, go stale and are rebuilt."""

from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, evaluate_automation_conditions

from mm_pipelines.events.generator import generate_events
from mm_pipelines.jobs import PLATFORM_SELECTION
from mm_pipelines.platform import Platform

from .events import produce
from .runs import execute

pytestmark = pytest.mark.integration

PATHS = AssetKey(["intermediate", "int_conversion_paths"])
STG_EVENTS = AssetKey(["staging", "stg_events"])
EVENTS_BY_DAY = AssetKey(["staging", "events_by_day"])


def test_a_late_event_marks_its_day_and_the_days_looking_back_on_it_stale(mm_home):
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    instance = DagsterInstance.ephemeral()
    platform = Platform.from_env()
    produce(platform, generate_events(events=3000, seed=9, start=datetime(2026, 10, 20, tzinfo=UTC), days=5))
    execute(defs, instance, PLATFORM_SELECTION, (date(2026, 10, 20), date(2026, 10, 24)))
    cursor = evaluate_automation_conditions(defs, instance).cursor

    # A click from 2026-10-10, long after that day was processed, and ingestion picks it up.
    late = dict(generate_events(events=1, seed=10, start=datetime(2026, 10, 10, tzinfo=UTC), days=1)[0])
    produce(platform, [late])
    ingested = execute(defs, instance, AssetSelection.assets(AssetKey(["raw", "events"])))
    days = {
        e.event_specific_data.materialization.partition
        for e in ingested.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == EVENTS_BY_DAY
    }
    assert days == {"2026-10-10"}

    # The ingestion recorded the event's day; that day is restaged, and exactly the days whose 30-day lookback
    # reaches it are rebuilt.
    tick = evaluate_automation_conditions(defs, instance, cursor=cursor)
    assert tick.get_requested_partitions(STG_EVENTS) == {"2026-10-10"}
    expected = {(date(2026, 10, 10) + timedelta(days=i)).isoformat() for i in range(31)}
    assert tick.get_requested_partitions(PATHS) == expected
