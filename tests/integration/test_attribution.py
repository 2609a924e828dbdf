"""Attribution on the embedded platform, through Dagster: dbt on chDB equals the reference engine row for row,
partition runs are idempotent, and building day by day equals one run over the range and a dbt full refresh."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, DagsterInstance

from mm_pipelines.assets.partitions import range_tags
from mm_pipelines.attribution.config import RULE_MODELS, AttributionConfig
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.events.generator import generate_events
from mm_pipelines.platform import Platform
from tests.attribution_oracles.cases import edge_case_events
from tests.attribution_oracles.reference import attribution_credits, from_events, load_fx_rates

from .events import produce

pytestmark = pytest.mark.integration

COLUMNS = (
    "conversion_id",
    "order_id",
    "user_id",
    "converted_at",
    "conversion_date",
    "model",
    "touch_index",
    "touch_count",
    "touch_id",
    "touch_at",
    "touch_type",
    "channel",
    "campaign_id",
    "creative_id",
    "asset_id",
    "credit_share",
    "revenue",
    "revenue_credit",
    "currency",
)
DAILY = [
    "intermediate/int_conversion_paths",
    "intermediate/int_attribution_journeys",
    "intermediate/attribution_fit",
    "marts/attribution_credits",
    "marts/attribution_daily",
    "marts/attribution_data_driven",
]


def days_of(events) -> tuple[date, date]:
    days = sorted(e["occurred_at"][:10] for e in events)
    return date.fromisoformat(days[0]), date.fromisoformat(days[-1])


def run(job_or_selection, first, last, instance):
    from dagster import AssetKey, AssetSelection, define_asset_job

    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    if job_or_selection == "platform_job":
        job = defs.resolve_job_def("platform_job")
    else:
        keys = [AssetKey.from_user_string(k) for k in job_or_selection.split()]
        job = define_asset_job("subset", selection=AssetSelection.assets(*keys)).resolve(
            asset_graph=defs.resolve_asset_graph()
        )
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=range_tags(first, last))
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
    # Blocking (error) checks must pass; a freshness warning is expected while days are built one by one.
    failed = [(c.check_name, c.description) for c in checks if not c.passed and c.severity == AssetCheckSeverity.ERROR]
    assert not failed, failed
    return checks


def run_backfill(first, last, instance, publish: bool):
    from mm_pipelines.definitions import build_definitions

    job = build_definitions().resolve_job_def("attribution_backfill_job")
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags=range_tags(first, last),
        run_config={"ops": {"backfill__attribution_credits": {"config": {"publish": publish}}}},
    )
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]


def backfill_rows(platform) -> list[tuple]:
    rows = platform.warehouse.query_rows(f"SELECT {', '.join(COLUMNS)} FROM backfill.attribution_credits")
    return sorted(normalise(dict(zip(COLUMNS, r))) for r in rows)


def _ms(t):
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def normalise(row: dict) -> tuple:
    r = dict(row)
    r["converted_at"], r["touch_at"] = _ms(r["converted_at"]), _ms(r["touch_at"])
    r["credit_share"], r["revenue"], r["revenue_credit"] = (
        Decimal(r[k]) for k in ("credit_share", "revenue", "revenue_credit")
    )
    r["touch_index"], r["touch_count"] = int(r["touch_index"]), int(r["touch_count"])
    return tuple(r[c] for c in COLUMNS)


def mart_rows(platform, where="1") -> list[tuple]:
    rows = platform.warehouse.query_rows(f"SELECT {', '.join(COLUMNS)} FROM marts.attribution_credits WHERE {where}")
    return sorted(normalise(dict(zip(COLUMNS, r))) for r in rows)


def reference_rows(events, config) -> list[tuple]:
    touches, conversions = from_events(events, load_fx_rates(dbt_project_dir() / "seeds" / "fx_rates.csv"))
    return sorted(normalise(r) for r in attribution_credits(touches, conversions, config))


def snapshot(platform) -> dict:
    w = platform.warehouse
    return {
        "credits": mart_rows(platform),
        "daily": sorted(w.query_rows("SELECT * FROM marts.attribution_daily")),
        "data_driven": sorted(w.query_rows("SELECT * FROM marts.attribution_data_driven")),
        "fit": sorted(w.query_rows("SELECT * FROM intermediate.attribution_fit")),
    }


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "MM_ATTRIBUTION_PATH_TRANSFORMS": "drop_trailing_direct,collapse_repeats",
            "MM_ATTRIBUTION_HALF_LIFE_DAYS": "3",
            "MM_ATTRIBUTION_POSITION_FIRST_WEIGHT": "0.3",
            "MM_ATTRIBUTION_POSITION_LAST_WEIGHT": "0.5",
            "MM_ATTRIBUTION_FIT_DAYS": "7",
        },
    ],
    ids=["defaults", "configured"],
)
def test_dbt_attribution_equals_the_reference_engine_on_edge_cases(mm_home, monkeypatch, settings):
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    platform = Platform.from_env()
    events = edge_case_events()
    produce(platform, events)
    checks = run("platform_job", *days_of(events), DagsterInstance.ephemeral())
    assert {"attribution_credits_expectations_check", "attribution_credits_complete_check"} <= {
        c.check_name for c in checks
    }
    expected = reference_rows(events, AttributionConfig.from_env())
    actual = mart_rows(platform)
    assert len(actual) == len(expected)
    mismatched = [(a, e) for a, e in zip(actual, expected) if a != e]
    assert not mismatched, mismatched[:5]
    models = {r[5] for r in actual}
    assert len(models) == 8 and "unattributed" in {r[11] for r in actual}

    # Spark from the Parquet archive, back through the object store: the same rule-based rows, to the last digit.
    first, last = days_of(events)
    instance = DagsterInstance.ephemeral()
    run_backfill(first, last, instance, publish=False)
    rule_based = [r for r in actual if r[5] in RULE_MODELS]
    assert backfill_rows(platform) == rule_based
    run_backfill(first, last, instance, publish=True)  # replaces the mart's rule-based rows with Spark's
    assert mart_rows(platform) == actual


def test_partitions_are_idempotent_and_day_by_day_equals_one_range_and_a_full_refresh(mm_home, monkeypatch):
    monkeypatch.setenv("MM_ATTRIBUTION_REPROCESS_DAYS", "0")
    platform = Platform.from_env()
    events = generate_events(events=5000, seed=5, start=datetime(2026, 10, 3, tzinfo=UTC), days=4)
    produce(platform, events)
    instance = DagsterInstance.ephemeral()
    first, last = days_of(events)
    run(
        "raw/events staging/stg_events staging/stg_ad_spend intermediate/int_conversions intermediate/int_touchpoints "
        "reference/fx_rates staging/stg_fx_rates reference/attribution_lookback_windows",
        first,
        last,
        instance,
    )
    day = first
    while day <= last:
        run(" ".join(DAILY), day, day, instance)
        day += timedelta(days=1)
    day_by_day = snapshot(platform)
    assert day_by_day["credits"] and day_by_day["fit"]

    run(" ".join(DAILY), first, last, instance)
    assert snapshot(platform) == day_by_day

    middle = first + timedelta(days=1)
    run(" ".join(DAILY), middle, middle, instance)  # a retried partition changes nothing
    assert snapshot(platform) == day_by_day

    subprocess.run(
        [str(Path(sys.executable).parent / "mm-dbt"), "build", "--full-refresh", "--select", "tag:daily", "--quiet"],
        cwd=dbt_project_dir(),
        check=True,
    )
    assert snapshot(platform) == day_by_day
