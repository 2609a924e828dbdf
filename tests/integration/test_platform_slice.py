"""The vertical slice in-process: events → raw → dbt staging → mart → Great Expectations checks."""

import csv
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, build_sensor_context, evaluate_automation_conditions

from mm_pipelines.assets.partitions import range_tags
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.events.generator import as_live, generate_events
from mm_pipelines.platform import Platform

from .events import produce

pytestmark = pytest.mark.integration

FX_RATES = AssetKey(["reference", "fx_rates"])
STG_EVENTS = AssetKey(["staging", "stg_events"])
BAD = [b"{not json", b'{"event_id": "x", "event_type": "click", "user_id": "a@b.com"}']


def expected_mart(events) -> dict:
    """The mart computed independently in Python with Decimal, from the seed's FX rates."""
    with open(dbt_project_dir() / "seeds" / "fx_rates.csv") as f:
        rates = {(r["currency"], r["month"]): Decimal(r["rate_to_reporting"]) for r in csv.DictReader(f)}
    rows = defaultdict(lambda: [0, 0, 0, Decimal("0")])
    for e in events:
        day = date.fromisoformat(e["occurred_at"][:10])
        row = rows[(day, e["channel"], e["campaign_id"])]
        row[("impression", "click", "conversion").index(e["event_type"])] += 1
        if e["event_type"] == "conversion":
            rate = rates[(e["currency"], day.replace(day=1).isoformat())]
            row[3] += (Decimal(e["revenue"]) * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return {k: tuple(v) for k, v in rows.items()}


def actual_mart(platform) -> dict:
    rows = platform.warehouse.query_rows(
        "SELECT event_date, channel, campaign_id, impressions, clicks, conversions, revenue "
        "FROM marts.campaign_performance_daily"
    )
    return {(d, ch, c): (i, k, v, r) for d, ch, c, i, k, v, r in rows}


def run_platform_job(events):
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    days = sorted(e["occurred_at"][:10] for e in events)
    result = defs.resolve_job_def("platform_job").execute_in_process(
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags=range_tags(date.fromisoformat(days[0]), date.fromisoformat(days[-1])),
    )
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return result, checks


def assert_slice(platform, events):
    result, checks = run_platform_job(events)
    assert result.success
    materialized = {m.to_user_string() for m in _materialized_keys(result)}
    assert {
        "raw/events",
        "staging/stg_events",
        "marts/campaign_performance_daily",
        "reference/fx_rates",
        "marts/attribution_credits",
        "marts/attribution_daily",
    } <= materialized
    names = {c.check_name for c in checks}
    assert {
        "stg_events_expectations_check",
        "campaign_performance_expectations_check",
        "campaign_performance_reconciles_check",
    } <= names
    assert any(n.startswith("unique_combination") for n in names)  # dbt tests arrive as asset checks too
    assert all(c.passed for c in checks), [(c.check_name, c.description) for c in checks if not c.passed]
    assert actual_mart(platform) == expected_mart(events)


def _materialized_keys(result):
    return [e.asset_key for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]


def test_slice_on_the_embedded_platform_is_correct_and_rerunnable(mm_home):
    platform = Platform.from_env()
    events = generate_events(events=4000, seed=21)
    produce(platform, events, BAD)
    assert_slice(platform, events)
    dead = platform.warehouse.query_rows("SELECT error FROM raw.dead_letters ORDER BY error")
    assert [d[0] for d in dead] == [
        "PII: an e-mail address appears in field user_id",
        "malformed JSON: the message is not a JSON document",
    ]
    # The same events produced again (a producer retry): nothing analysts read changes.
    produce(platform, events[:500])
    assert_slice(platform, events)
    assert platform.warehouse.query_rows("SELECT count(), uniqExact(event_id) FROM staging.stg_events")[0] == (
        len(events),
        len(events),
    )


def test_slice_reads_from_real_kafka(mm_home, kafka_bootstrap, kafka_topic, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", f"kafka://{kafka_bootstrap}")
    monkeypatch.setenv("MM_EVENTS_TOPIC", kafka_topic)
    platform = Platform.from_env()
    events = generate_events(events=3000, seed=22)
    produce(platform, events, BAD)
    platform.close()
    assert_slice(platform, events)
    ranges = platform.warehouse.query_rows("SELECT sum(events), sum(dead_letters) FROM raw.ingested_ranges")[0]
    assert ranges == (len(events), len(BAD))


def test_sensor_requests_each_range_once(mm_home):
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.sensors.events import raw_events_sensor

    platform = Platform.from_env()
    produce(platform, generate_events(events=300, seed=23))
    defs = build_definitions()
    resources = {k: v for k, v in defs.resources.items() if k in ("clickhouse", "event_bus")}
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
        first = raw_events_sensor(ctx)
        keys = sorted(r.run_key for r in first)
        ends = platform.bus.end_offsets("mm.events.v1")
        assert keys == ["mm.events.v1:" + ";".join(f"{p}:0-{end}" for p, end in sorted(ends.items()) if end)]
    with build_sensor_context(
        instance=instance, resources=resources, definitions=defs
    ) as ctx:  # re-evaluated on the same state: same keys
        assert sorted(r.run_key for r in raw_events_sensor(ctx)) == keys
    with build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor, definitions=defs) as ctx2:
        assert "No new events" in str(raw_events_sensor(ctx2).skip_message)


def test_sensor_run_credits_todays_conversions_and_waits_while_in_flight(mm_home):
    """The live path: one sensor-launched run ingests, stages and credits today's conversions; while a run of
    the sensor is in flight, the next tick waits instead of queueing another."""
    from dagster import DagsterRun, DagsterRunStatus

    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.sensors.events import raw_events_sensor

    platform = Platform.from_env()
    events = as_live(generate_events(events=400, seed=24), datetime.now(UTC), random.Random(24))
    produce(platform, events)
    defs = build_definitions()
    resources = {k: v for k, v in defs.resources.items() if k in ("clickhouse", "event_bus")}
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
        (request,) = raw_events_sensor(ctx)
    today = datetime.now(UTC).date()
    assert request.partition_key == today.isoformat()
    # Nothing was built yet: the first run builds what the daily models read too.
    assert FX_RATES in request.asset_selection
    result = execute_request(defs, request, instance)
    # Credits first: the attribution steps run before the checks that were ready long before them.
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert started.index("attribution_marts_dbt") < started.index("raw__events_raw_events_freshness_check"), started
    conversions = {e["event_id"] for e in events if e["event_type"] == "conversion"}
    assert conversions
    credited = platform.warehouse.query_rows(
        "SELECT DISTINCT conversion_id FROM marts.attribution_credits WHERE conversion_date = {d:Date}", {"d": today}
    )
    assert {c for (c,) in credited} == conversions

    second_batch = as_live(generate_events(events=50, seed=25), datetime.now(UTC), random.Random(25))
    produce(platform, second_batch)
    instance.add_run(
        DagsterRun(
            job_name="platform_job", run_id="in-flight", status=DagsterRunStatus.STARTED, tags=dict(request.tags)
        )
    )
    with build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor, definitions=defs) as ctx2:
        assert "in flight" in str(raw_events_sensor(ctx2).skip_message)
    instance.report_run_canceled(instance.get_run_by_id("in-flight"))
    with build_sensor_context(instance=instance, resources=resources, cursor=ctx.cursor, definitions=defs) as ctx3:
        (following,) = raw_events_sensor(ctx3)
    assert following.run_key != request.run_key
    # From then on a run is ingestion and the daily assets: the events staged with their paths, then the marts.
    assert FX_RATES not in following.asset_selection
    assert STG_EVENTS in following.asset_selection
    cursor = evaluate_automation_conditions(defs, instance).cursor
    result = execute_request(defs, following, instance)
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert {s for s in steps if s.endswith("_dbt")} == {"event_days_dbt", "attribution_marts_dbt"}, steps
    # The Great Expectations suites are not in live runs: they judge what changed every 10 minutes.
    assert not [s for s in steps if s.endswith("expectations_check")], steps
    tick = evaluate_automation_conditions(
        defs, instance, cursor=cursor, evaluation_time=datetime.now(UTC) + timedelta(minutes=11)
    )
    assert {r.key.name for r in tick.results if isinstance(r.key, AssetCheckKey) and r.true_subset.size} == {
        "stg_events_expectations_check",
        "campaign_performance_expectations_check",
        "attribution_credits_expectations_check",
    }
    credited = platform.warehouse.query_rows("SELECT uniqExact(conversion_id) FROM marts.attribution_credits")[0][0]
    assert credited == len(conversions) + sum(1 for e in second_batch if e["event_type"] == "conversion")


def execute_request(defs, request, instance):
    """The run the request launches: its assets and checks only."""
    job = defs.resolve_job_def(request.job_name or "platform_job").get_subset(
        asset_selection=set(request.asset_selection), asset_check_selection=set(request.asset_check_keys)
    )
    result = job.execute_in_process(
        run_config=request.run_config, partition_key=request.partition_key, tags=request.tags, instance=instance
    )
    assert result.success
    return result
