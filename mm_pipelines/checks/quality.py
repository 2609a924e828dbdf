"""Data-quality checks as Dagster asset checks: Great Expectations suites and reconciliations.

Great Expectations judges only what dbt's tests do not: value ranges, the PII rule, sums that must balance.
Uniqueness, not-null and accepted values are dbt tests in the models' schema.yml, run by every dbt build;
checking them again here would cost a second scan and a second failure for one defect.
"""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from mm_pipelines.assets.automation import QUALITY_CHECK_CADENCE
from mm_pipelines.checks.expectations import check_result, no_violations, validate
from mm_pipelines.resources import ClickHouseResource

STG_EVENTS = AssetKey(["staging", "stg_events"])
CAMPAIGN_PERFORMANCE = AssetKey(["marts", "campaign_performance_daily"])


# ClickHouse reduces staging to one row per event day of violation counts, which Great Expectations
# validates: the check reads kilobytes however many events there are, and still says which day broke.
# (Unique event ids, a time and a known type on every event are dbt tests of stg_events.)
STG_EVENTS_VIOLATIONS_SQL = """
SELECT
    event_date,
    count() AS events,
    countIf(position(user_id, '@') > 0) AS emails_in_user_id
FROM staging.stg_events
GROUP BY event_date
ORDER BY event_date"""

STG_EVENTS_VIOLATIONS = ("emails_in_user_id",)


def stg_events_expectations() -> list:
    return no_violations(STG_EVENTS_VIOLATIONS)


def campaign_performance_expectations() -> list:
    import great_expectations as gx

    e = gx.expectations
    # The grain's uniqueness and the non-null keys are dbt tests of the mart.
    return [
        *(
            e.ExpectColumnValuesToBeBetween(column=c, min_value=0)
            for c in ("impressions", "clicks", "conversions", "revenue")
        ),
        e.ExpectColumnValuesToBeBetween(column="unconverted_conversions", min_value=0, max_value=0),
        # No upper bound on ctr: a click just after midnight can make a day's clicks exceed its impressions.
        e.ExpectColumnValuesToBeBetween(column="ctr", min_value=0),
    ]


@asset_check(
    asset=STG_EVENTS,
    blocking=True,
    automation_condition=QUALITY_CHECK_CADENCE,
    description="Great Expectations, per event day: no e-mail address in user_id (dbt tests ids, times and types).",
)
def stg_events_expectations_check(clickhouse: ClickHouseResource) -> AssetCheckResult:
    df = clickhouse.get_warehouse().query_arrow(STG_EVENTS_VIOLATIONS_SQL).to_pandas()
    return check_result(validate(df, "stg_events", stg_events_expectations()), len(df))


@asset_check(
    asset=CAMPAIGN_PERFORMANCE,
    blocking=True,
    automation_condition=QUALITY_CHECK_CADENCE,
    description="Great Expectations: non-negative counts, revenue and ctr; every conversion converted.",
)
def campaign_performance_expectations_check(
    context: AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> AssetCheckResult:
    df = clickhouse.get_warehouse().query_arrow("SELECT * FROM marts.campaign_performance_daily").to_pandas()
    return check_result(validate(df, "campaign_performance_daily", campaign_performance_expectations()), len(df))


@asset_check(
    asset=CAMPAIGN_PERFORMANCE,
    additional_deps=[STG_EVENTS],
    blocking=True,
    description="The mart's event counts and revenue equal the staging events they summarise.",
)
def campaign_performance_reconciles_check(clickhouse: ClickHouseResource) -> AssetCheckResult:
    with clickhouse.get_warehouse().session() as s:
        mart = s.query_rows(
            "SELECT sum(impressions), sum(clicks), sum(conversions) FROM marts.campaign_performance_daily"
        )[0]
        stg = s.query_rows(
            "SELECT countIf(event_type = 'impression'), countIf(event_type = 'click'), "
            "countIf(event_type = 'conversion') FROM staging.stg_events"
        )[0]
    names = ("impressions", "clicks", "conversions")
    diffs = {n: int(m) - int(t) for n, m, t in zip(names, mart, stg) if int(m) != int(t)}
    return AssetCheckResult(
        passed=not diffs,
        description="mart matches staging" if not diffs else f"mart minus staging: {diffs}",
        metadata={f"mart_{n}": int(m) for n, m in zip(names, mart)}
        | {f"staging_{n}": int(t) for n, t in zip(names, stg)},
    )


quality_checks = [
    stg_events_expectations_check,
    campaign_performance_expectations_check,
    campaign_performance_reconciles_check,
]
