"""Attribution checks: every model credits every conversion exactly once, to the cent, never forward in time.

ClickHouse reduces the whole mart to one row per (day, model) of violation counts; Great Expectations
validates that frame, so the check stays cheap on hundreds of millions of credits and still says which
model and day broke. Blocking: royalties must never be computed from a broken attribution.

The completeness and credit checks judge the days of the run's partitions only (run_days): a concurrent run
may be rebuilding another day (its paths rebuilt, its credits not yet), which is that run's to check.
"""

from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from mm_pipelines.assets.automation import QUALITY_CHECK_CADENCE
from mm_pipelines.attribution.config import MODELS
from mm_pipelines.checks.expectations import check_result, no_violations, validate
from mm_pipelines.config import Settings
from mm_pipelines.resources import ClickHouseResource

ATTRIBUTION_CREDITS = AssetKey(["marts", "attribution_credits"])

VIOLATIONS_SQL = """
SELECT
    conversion_date,
    model,
    count() AS conversions,
    countIf(share_total != 1) AS shares_not_summing_to_one,
    countIf(credit_total != revenue) AS credits_not_summing_to_revenue,
    countIf(negative_credits > 0) AS negative_credits,
    countIf(touches_after_conversion > 0) AS touches_after_conversion
FROM (
    SELECT conversion_date, model, conversion_id,
        sum(credit_share) AS share_total,
        sum(revenue_credit) AS credit_total,
        any(revenue) AS revenue,
        countIf(credit_share < 0 OR revenue_credit < 0) AS negative_credits,
        countIf(touch_at IS NOT NULL AND touch_at >= converted_at) AS touches_after_conversion
    FROM marts.attribution_credits
    WHERE {days}
    GROUP BY conversion_date, model, conversion_id
)
GROUP BY conversion_date, model
ORDER BY conversion_date, model"""

VIOLATION_COLUMNS = (
    "shares_not_summing_to_one",
    "credits_not_summing_to_revenue",
    "negative_credits",
    "touches_after_conversion",
)

# Every conversion path of the days judged that some model did not credit (the doubled braces survive str.format).
MISSING_CREDITS_SQL = """
SELECT c.model, count()
FROM (SELECT conversion_id FROM intermediate.int_conversion_paths WHERE {days}) AS p
CROSS JOIN (SELECT arrayJoin({{models:Array(String)}}) AS model) AS c
LEFT ANTI JOIN (SELECT DISTINCT conversion_id, model FROM marts.attribution_credits WHERE {days}) AS a
    ON a.conversion_id = p.conversion_id AND a.model = c.model
GROUP BY c.model"""


def run_days(context: AssetCheckExecutionContext) -> tuple[date, date] | None:
    """[first, end) of the daily partitions the run materializes, or None for a run without partitions."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end) + timedelta(days=1)


def days_judged(context: AssetCheckExecutionContext) -> tuple[str, dict, str]:
    """(the SQL condition on conversion_date, its parameters, the days in words): the run's partitions, or
    every day attribution has credited when the run has none (a check launched on its own)."""
    days = run_days(context)
    if days is None:
        return (
            "conversion_date IN (SELECT DISTINCT conversion_date FROM marts.attribution_credits)",
            {},
            "every credited day",
        )
    first, end = days
    last = end - timedelta(days=1)
    words = str(first) if first == last else f"{first} … {last}"
    return "conversion_date >= {first:Date} AND conversion_date < {end:Date}", {"first": first, "end": end}, words


def attribution_expectations() -> list:
    """The sums dbt cannot test per conversion; the model names are a dbt accepted_values test of the mart."""
    return no_violations(VIOLATION_COLUMNS)


@asset_check(
    asset=ATTRIBUTION_CREDITS,
    blocking=True,
    automation_condition=QUALITY_CHECK_CADENCE,
    description=(
        "Great Expectations: per model, each conversion's shares sum to 1 and its credits to its revenue; "
        "no negative credit; no touch at or after its conversion."
    ),
)
def attribution_credits_expectations_check(
    context: AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> AssetCheckResult:
    condition, params, _ = days_judged(context)
    df = clickhouse.get_warehouse().query_arrow(VIOLATIONS_SQL.format(days=condition), params).to_pandas()
    return check_result(validate(df, "attribution_credits", attribution_expectations()), len(df))


@asset_check(
    asset=ATTRIBUTION_CREDITS,
    blocking=True,
    description="Every conversion is credited by every model (unattributed ones included): nothing dropped.",
)
def attribution_credits_complete_check(
    context: AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> AssetCheckResult:
    condition, params, judged = days_judged(context)
    with clickhouse.get_warehouse().session() as s:
        rows = s.query_rows(MISSING_CREDITS_SQL.format(days=condition), params | {"models": list(MODELS)})
    missing = {m: int(n) for m, n in rows}
    return AssetCheckResult(
        passed=not missing,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"every conversion of {judged} credited by every model"
            if not missing
            else f"conversions of {judged} missing credits per model: {missing}"
        ),
        metadata={"missing": MetadataValue.json(missing), "days": judged},
    )


@asset_check(
    asset=ATTRIBUTION_CREDITS,
    description=(
        "Attribution keeps up: the newest credited conversion is within MM_ATTRIBUTION_FRESHNESS_HOURS (36) "
        "of the newest conversion."
    ),
)
def attribution_credits_freshness_check(clickhouse: ClickHouseResource) -> AssetCheckResult:
    with clickhouse.get_warehouse().session() as s:
        credited = s.scalar("SELECT max(converted_at) FROM marts.attribution_credits")
        newest = s.scalar("SELECT max(converted_at) FROM intermediate.int_conversions")
    limit = Settings.from_env().attribution_freshness_hours
    if credited is None or credited.year <= 1970:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN, description="no conversion credited yet"
        )
    behind_h = max(0.0, (newest - credited).total_seconds() / 3600)
    return AssetCheckResult(
        passed=behind_h <= limit,
        severity=AssetCheckSeverity.WARN,
        description=f"credits are {behind_h:.1f} h behind the newest conversion (limit {limit:g} h)",
        metadata={"hours_behind": round(behind_h, 2), "checked_at": datetime.now(UTC).isoformat()},
    )


attribution_checks = [
    attribution_credits_expectations_check,
    attribution_credits_complete_check,
    attribution_credits_freshness_check,
]
