"""The staging check fails, naming the broken day, on the violations it exists for; the attribution checks
judge the days of the run's partitions."""

from datetime import date

import pytest
from dagster import AssetSelection, AssetSpec, DagsterInstance, Definitions, define_asset_job

from mm_pipelines.assets.partitions import DAILY_PARTITIONS, range_tags
from mm_pipelines.checks.attribution import (
    ATTRIBUTION_CREDITS,
    MODELS,
    attribution_credits_complete_check,
    attribution_credits_expectations_check,
)
from mm_pipelines.checks.quality import stg_events_expectations_check
from mm_pipelines.resources import ClickHouseResource

pytestmark = pytest.mark.integration

STG_EVENTS_DDL = """CREATE TABLE staging.stg_events (
    event_id String, event_type String, occurred_at Nullable(DateTime64(3, 'UTC')), event_date Date, user_id String
) ENGINE = MergeTree ORDER BY tuple()"""


def _check(warehouse, rows):
    with warehouse.session() as s:
        s.command("CREATE DATABASE IF NOT EXISTS staging")
        s.command("DROP TABLE IF EXISTS staging.stg_events")
        s.command(STG_EVENTS_DDL)
        s.command(
            "INSERT INTO staging.stg_events VALUES "
            + ", ".join(
                f"('{e}', '{t}', {'NULL' if at is None else repr(at)}, '{d}', '{u}')" for e, t, at, d, u in rows
            )
        )
    return stg_events_expectations_check(clickhouse=ClickHouseResource(url=warehouse.url))


CLEAN = [
    ("e1", "click", "2026-10-01 10:00:00", "2026-10-01", "u1"),
    ("e2", "conversion", "2026-10-01 11:00:00", "2026-10-01", "u1"),
    ("e3", "impression", "2026-10-02 09:00:00", "2026-10-02", "u2"),
]


def test_clean_staging_passes(warehouse):
    result = _check(warehouse, CLEAN)
    assert result.passed, result.description
    assert result.metadata["rows"].value == 2  # one row per event day


def test_an_email_in_user_id_fails_the_check(warehouse):
    # Duplicate ids, missing times and unknown types are dbt tests of stg_events (tests/unit/test_dbt_docs.py).
    result = _check(warehouse, [*CLEAN, ("e4", "click", "2026-10-02 12:00:00", "2026-10-02", "ann@example.com")])
    assert not result.passed
    assert "emails_in_user_id" in result.description


# --- Attribution checks judge the days of the run's partitions ---------------------------------------------

PATHS_DDL = (
    "CREATE TABLE intermediate.int_conversion_paths (conversion_id String, conversion_date Date) "
    "ENGINE = MergeTree ORDER BY tuple()"
)
CREDITS_DDL = """CREATE TABLE marts.attribution_credits (
    conversion_id String, conversion_date Date, model String, credit_share Decimal(38, 10),
    revenue_credit Decimal(38, 10),
    revenue Decimal(38, 10), touch_at Nullable(DateTime64(3, 'UTC')), converted_at DateTime64(3, 'UTC')
) ENGINE = MergeTree ORDER BY tuple()"""
DAY_D, DAY_E = date(2026, 10, 20), date(2026, 10, 10)


def _attribution(
    warehouse, credited: dict[str, date], uncredited: dict[str, date], short: dict[str, date] | None = None
):
    """Paths for every conversion (id -> day); each model credits the whole revenue (10) of `credited`,
    nothing of `uncredited`, and 7 of `short`."""
    with warehouse.session() as s:
        for db in ("intermediate", "marts"):
            s.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        s.command(PATHS_DDL)
        s.command(CREDITS_DDL)
        paths = {**credited, **uncredited, **(short or {})}
        s.command(
            "INSERT INTO intermediate.int_conversion_paths VALUES "
            + ", ".join(f"('{c}', '{d}')" for c, d in paths.items())
        )
        rows = [(c, d, m, 10) for c, d in credited.items() for m in MODELS]
        rows += [(c, d, m, 7) for c, d in (short or {}).items() for m in MODELS]
        s.command(
            "INSERT INTO marts.attribution_credits VALUES "
            + ", ".join(
                f"('{c}', '{d}', '{m}', 1, {credit}, 10, '{d} 09:00:00', '{d} 10:00:00')" for c, d, m, credit in rows
            )
        )


def _run_checks(warehouse, tags):
    """The attribution checks evaluated by a real run with these tags (its partitions)."""
    checks = [attribution_credits_complete_check, attribution_credits_expectations_check]
    defs = Definitions(
        assets=[AssetSpec(ATTRIBUTION_CREDITS, partitions_def=DAILY_PARTITIONS)],
        asset_checks=checks,
        jobs=[define_asset_job("checks", selection=AssetSelection.checks(*checks))],
        resources={"clickhouse": ClickHouseResource(url=warehouse.url)},
    )
    result = defs.resolve_job_def("checks").execute_in_process(
        instance=DagsterInstance.ephemeral(), tags=tags, raise_on_error=False
    )
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_run_over_day_d_ignores_a_day_another_run_is_rebuilding(warehouse):
    """Day E's paths were rebuilt by another run (late events) and its credits not yet: a run over day D
    passes; a run over E, and a run without partitions, still fail on E."""
    _attribution(warehouse, credited={"d1": DAY_D, "d2": DAY_D, "e1": DAY_E}, uncredited={"e2": DAY_E})
    for tags in (range_tags(DAY_D, DAY_D), {"dagster/partition": DAY_D.isoformat()}):
        evaluation = _run_checks(warehouse, tags)["attribution_credits_complete_check"]
        assert evaluation.passed, evaluation.description
        assert evaluation.description == f"every conversion of {DAY_D} credited by every model"
    for tags in (range_tags(DAY_E, DAY_D), {}):
        evaluation = _run_checks(warehouse, tags)["attribution_credits_complete_check"]
        assert not evaluation.passed
        assert "'linear': 1" in evaluation.description


def test_the_credit_sums_are_judged_on_the_run_days(warehouse):
    _attribution(warehouse, credited={"d1": DAY_D}, uncredited={}, short={"e1": DAY_E})
    on_d = _run_checks(warehouse, range_tags(DAY_D, DAY_D))["attribution_credits_expectations_check"]
    assert on_d.passed, on_d.description
    assert on_d.metadata["rows"].value == len(MODELS)  # day D under each model
    on_e = _run_checks(warehouse, {"dagster/partition": DAY_E.isoformat()})["attribution_credits_expectations_check"]
    assert not on_e.passed and "credits_not_summing_to_revenue" in on_e.description
