"""Jobs: the platform's main job and the ingestion job the events sensor launches."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from mm_pipelines.assets.ingest import RAW_EVENTS_KEY

# Ingest whatever is pending, build every dbt model, run every check.
platform_job = define_asset_job(
    "platform_job",
    selection=AssetSelection.all(),
    description="Ingest pending events, build the dbt models and run the data-quality checks.",
)

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(RAW_EVENTS_KEY),
    description="Ingest one offset range of the events topic into raw.events.",
    # One step: running it in the run worker saves a second Python process start per range (seconds).
    executor_def=in_process_executor,
)
