"""Data-quality checks as Dagster asset checks: Great Expectations suites and reconciliations."""


from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from mm_pipelines.checks.expectations import ExpectationOutcome, no_violations, validate
from mm_pipelines.resources import ClickHouseResource

STG_EVENTS = AssetKey(["staging", "stg_events"])
CAMPAIGN_PERFORMANCE = AssetKey(["marts", "campaign_performance_daily"])


def _result(outcomes: list[ExpectationOutcome], rows: int) -> AssetCheckResult:
    failed = [o for o in outcomes if not o.success]
    return AssetCheckResult(
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            "; ".join(f"{o.expectation}({o.column}): {o.unexpected_count} unexpected" for o in failed)
            or f"all {len(outcomes)} expectations met on {rows} rows"
        ),
        metadata={
            "rows": rows,
            "expectations": MetadataValue.json(
                [{"expectation": o.expectation, "column": o.column, "success": o.success,
                  "unexpected_count": o.unexpected_count, "detail": {k: str(v) for k, v in o.detail.items()}}
                 for o in outcomes]
            ),
        },
    )


# ClickHouse reduces staging to one row per event day of violation counts, which Great Expectations
# validates: the check reads kilobytes however many events there are, and still says which day broke.
STG_EVENTS_VIOLATIONS_SQL = """
SELECT
    event_date,
    count() AS events,
    countIf(event_id IN (SELECT event_id FROM staging.stg_events GROUP BY event_id HAVING count() > 1)) AS duplicate_event_ids,
    countIf(occurred_at IS NULL) AS missing_occurred_at,
    countIf(event_type NOT IN ('impression', 'click', 'conversion')) AS unknown_event_types,
    countIf(position(user_id, '@') > 0) AS emails_in_user_id
FROM staging.stg_events
GROUP BY event_date
ORDER BY event_date"""

STG_EVENTS_VIOLATIONS = ("duplicate_event_ids", "missing_occurred_at", "unknown_event_types", "emails_in_user_id")


def stg_events_expectations() -> list:
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToBeUnique(column="event_date"), *no_violations(STG_EVENTS_VIOLATIONS)]


def campaign_performance_expectations() -> list:
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectCompoundColumnsToBeUnique(column_list=["event_date", "channel", "campaign_id"]),
        e.ExpectColumnValuesToNotBeNull(column="event_date"),
        e.ExpectColumnValuesToNotBeNull(column="channel"),
        *(e.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in ("impressions", "clicks", "conversions", "revenue")),
        e.ExpectColumnValuesToBeBetween(column="unconverted_conversions", min_value=0, max_value=0),
        # No upper bound on ctr: a click just after midnight can make a day's clicks exceed its impressions.
        e.ExpectColumnValuesToBeBetween(column="ctr", min_value=0),
    ]


@asset_check(asset=STG_EVENTS, blocking=True, description="Great Expectations, per event day: unique event ids, a time and a known type on every event, no e-mail in user_id.")
def stg_events_expectations_check(clickhouse: ClickHouseResource) -> AssetCheckResult:
    df = clickhouse.get_warehouse().query_arrow(STG_EVENTS_VIOLATIONS_SQL).to_pandas()
    return _result(validate(df, "stg_events", stg_events_expectations()), len(df))


@asset_check(asset=CAMPAIGN_PERFORMANCE, blocking=True, description="Great Expectations: unique grain, non-negative counts and revenue, every conversion converted.")
def campaign_performance_expectations_check(context: AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> AssetCheckResult:
    df = clickhouse.get_warehouse().query_arrow("SELECT * FROM marts.campaign_performance_daily").to_pandas()
    return _result(validate(df, "campaign_performance_daily", campaign_performance_expectations()), len(df))


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
            "SELECT countIf(event_type = 'impression'), countIf(event_type = 'click'), countIf(event_type = 'conversion') FROM staging.stg_events"
        )[0]
    names = ("impressions", "clicks", "conversions")
    diffs = {n: int(m) - int(t) for n, m, t in zip(names, mart, stg) if int(m) != int(t)}
    return AssetCheckResult(
        passed=not diffs,
        description="mart matches staging" if not diffs else f"mart minus staging: {diffs}",
        metadata={f"mart_{n}": int(m) for n, m in zip(names, mart)} | {f"staging_{n}": int(t) for n, t in zip(names, stg)},
    )


quality_checks = [stg_events_expectations_check, campaign_performance_expectations_check, campaign_performance_reconciles_check]
