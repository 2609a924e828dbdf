"""The code location: every asset, check, job, sensor and resource of the platform.

Built when Dagster loads the location, not when this module is imported: building reads configuration
(MM_HOME holds the dbt manifest, parsed there if the models changed).
"""

from dagster import AssetsDefinition, Definitions, definitions, in_process_executor

from mm_pipelines.assets.attribution import attribution_fit
from mm_pipelines.assets.automation import events_by_day
from mm_pipelines.assets.backfill import attribution_spark_backfill
from mm_pipelines.assets.dbt import build_dbt_assets, dbt_source_specs
from mm_pipelines.assets.ingest import raw_events
from mm_pipelines.assets.media import media_derivatives_job
from mm_pipelines.assets.royalties import royalty_payout_batches, royalty_rules_snapshot, royalty_statements
from mm_pipelines.checks.attribution import attribution_checks
from mm_pipelines.checks.freshness import raw_events_freshness_check
from mm_pipelines.checks.quality import quality_checks
from mm_pipelines.jobs import attribution_backfill_job, ingest_job, platform_job, royalties_job
from mm_pipelines.resources import build_resources
from mm_pipelines.sensors.audit import audit_export_job, audit_export_sensor
from mm_pipelines.sensors.automation import warehouse_automation_sensor
from mm_pipelines.sensors.events import raw_events_sensor
from mm_pipelines.sensors.media import media_derivatives_sensor
from mm_pipelines.sensors.moderation import sentinelnet_submission_job, sentinelnet_submission_sensor
from mm_pipelines.sensors.royalties import (
    kyc_checks_sensor,
    kyc_sync_job,
    license_expiry_sensor,
    license_workflow_job,
    payout_confirmation_job,
    payout_confirmation_sensor,
    royalties_monthly_schedule,
)


def build_definitions() -> Definitions:
    assets = [
        raw_events,
        events_by_day,
        *build_dbt_assets(),
        attribution_fit,
        attribution_spark_backfill,
        royalty_rules_snapshot,
        royalty_statements,
        royalty_payout_batches,
    ]
    produced = {key for asset in assets for key in (asset.keys if isinstance(asset, AssetsDefinition) else [asset.key])}
    return Definitions(
        assets=[*assets, *dbt_source_specs(produced)],
        asset_checks=[*quality_checks, *attribution_checks, raw_events_freshness_check],
        jobs=[
            platform_job,
            ingest_job,
            attribution_backfill_job,
            royalties_job,
            payout_confirmation_job,
            license_workflow_job,
            media_derivatives_job,
            kyc_sync_job,
            sentinelnet_submission_job,
            audit_export_job,
        ],
        sensors=[
            raw_events_sensor,
            warehouse_automation_sensor,
            payout_confirmation_sensor,
            license_expiry_sensor,
            media_derivatives_sensor,
            kyc_checks_sensor,
            sentinelnet_submission_sensor,
            audit_export_sensor,
        ],
        schedules=[royalties_monthly_schedule],
        resources=build_resources(),
        # Every step of a run in its run worker: a step process costs seconds of Python start-up, and the
        # embedded warehouse serialises the steps anyway (runs still start in parallel).
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    return build_definitions()
