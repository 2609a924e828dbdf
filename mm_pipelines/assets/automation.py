"""When daily partitions rebuild on their own: the latest day as data arrives, and any older day a late
event touched (plus the days whose lookback reaches it).

Today's partitions (and the reprocessing window before today) are rebuilt by the events sensor's own runs
right after they ingest. Each ingestion records the days its events are dated on as partitions of
`staging/events_by_day`: stg_events depends on those day by day, the paths and journeys on the touchpoints
through a lookback mapping, so a late event marks exactly the affected days stale and this condition requests
the ones those runs did not rebuild (staging first: one backfill orders them). Updates of unpartitioned inputs
(seeds, spend) are ignored here: they would otherwise mark every day since 2025 stale.
"""

from dagster import AssetKey, AssetSelection, AssetSpec, AutomationCondition, TimeWindowPartitionMapping

from mm_pipelines.assets.partitions import DAILY_PARTITIONS

EVENTS_BY_DAY_KEY = AssetKey(["staging", "events_by_day"])
# Conversion day D reads touches of days D-30 … D (the default click lookback; longer overrides still
# compute correctly, they are only not tracked for staleness beyond this).
LOOKBACK_DAYS = 30

events_by_day = AssetSpec(
    EVENTS_BY_DAY_KEY,
    partitions_def=DAILY_PARTITIONS,
    group_name="staging",
    kinds={"clickhouse"},
    description=(
        "The days of ingested events: materialized for each day that received events (late ones included) "
        "by the ingestion that landed them; staging restages those days."
    ),
)

TOUCH_LOOKBACK = TimeWindowPartitionMapping(start_offset=-LOOKBACK_DAYS)

_daily_upstream = AssetSelection.keys(EVENTS_BY_DAY_KEY) | AssetSelection.tag("partitioning", "daily")

DAILY_AUTOMATION = (
    AutomationCondition.any_deps_match(AutomationCondition.newly_updated() | AutomationCondition.will_be_requested())
    .allow(_daily_upstream)
    .since_last_handled()
    # the unpartitioned inputs (seeds, stg_ad_spend …) must exist; missing days upstream are simply empty
    & ~AutomationCondition.any_deps_missing().ignore(_daily_upstream)
    # Not held back while staging is in progress: the events sensor's runs stage almost continuously under a
    # steady stream, and waiting for a gap starved late days. A day is never requested twice at once, and
    # dbt-clickhouse overwrites a partition through a table named per invocation, so two runs on different
    # days do not collide.
    & ~AutomationCondition.in_progress()
).with_label("daily_data_changed")

# The unpartitioned models upstream of the daily ones follow raw/events once the platform has been built
# (`mm demo`, `mm materialize` or a deployment's first run): eager() never requests what was never built.
UPSTREAM_AUTOMATION = AutomationCondition.eager()

# Great Expectations suites judge what changed at most every 10 minutes, in runs of their own, and in every run of
# platform_job (`mm demo`, `mm materialize`): not in each live run of the events sensor, where the first suite's
# import of great_expectations alone cost 4 s of every 30 s cycle, ahead of the next cycle's credits. The live runs
# keep the cheap SQL checks (completeness, reconciliation, freshness) and every dbt test.
QUALITY_CHECK_CADENCE = (
    AutomationCondition.cron_tick_passed("*/10 * * * *").since_last_handled()
    & AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.in_progress()
).with_label("every_10_minutes_after_changes")
