"""Running a selection of the platform's assets in-process, as one run over a range of daily partitions."""

from datetime import date

from dagster import define_asset_job

from mm_pipelines.assets.partitions import range_tags


def execute(defs, instance, selection, days: tuple[date, date] | None = None):
    """One run of `selection` (over the daily partitions `days`, first and last, if given); it must succeed."""
    job = define_asset_job("subset", selection=selection).resolve(asset_graph=defs.resolve_asset_graph())
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=range_tags(*days) if days else {})
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
    return result
