"""Jobs: the platform's main job (which the events sensor launches for today), ingestion alone, and the royalty jobs."""

from dagster import AssetSelection, define_asset_job

from mm_pipelines.assets.backfill import BACKFILL_KEY
from mm_pipelines.assets.ingest import RAW_EVENTS_KEY
from mm_pipelines.assets.partitions import DAILY_PARTITIONS, MONTHLY_PARTITIONS

# Everything that follows the events: not the Spark backfill (on request) nor royalties (monthly periods).
PLATFORM_SELECTION = AssetSelection.all() - AssetSelection.groups("backfill", "royalty")

# Ingest whatever is pending, build every dbt model and the attribution for the run's days, run every check.
# The events sensor runs its daily part only (live_selection, sensors/events.py).
platform_job = define_asset_job(
    "platform_job",
    selection=PLATFORM_SELECTION,
    partitions_def=DAILY_PARTITIONS,
    description=(
        "Ingest pending events, build the dbt models and attribution for the selected days, "
        "run the data-quality checks."
    ),
)

attribution_backfill_job = define_asset_job(
    "attribution_backfill_job",
    selection=AssetSelection.assets(BACKFILL_KEY),
    partitions_def=DAILY_PARTITIONS,
    description="Recompute the rule-based attribution models for a range of days with Spark from the Parquet archive.",
)

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(RAW_EVENTS_KEY),
    description=(
        "Ingest what is pending on the events topic (or up to the configured offsets) into raw.events, "
        "and nothing else."
    ),
)

royalties_job = define_asset_job(
    "royalties_job",
    selection=AssetSelection.groups("royalty"),
    partitions_def=MONTHLY_PARTITIONS,
    description=(
        "Snapshot the contracts, post the period's royalty ledger, compute statements and draft payout batches."
    ),
)
