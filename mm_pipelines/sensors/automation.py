"""Declarative automation for the warehouse: staging follows ingestion, daily attribution follows staging.

Running by default, so a platform started with `mm dev` (or deployed) turns a produced conversion into
credits without anyone launching a job; the short interval serves the attribution freshness objective.
"""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

warehouse_automation_sensor = AutomationConditionSensorDefinition(
    "warehouse_automation_sensor",
    target=AssetSelection.all() - AssetSelection.groups("backfill", "ingest"),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description=(
        "Rebuilds staging when events land and the daily attribution partitions whose data changed "
        "(late days included)."
    ),
)
