"""dbt models as Dagster assets: one asset per model, keyed by database and grouped by layer.

Three dbt ops, split where the graph needs it: the unpartitioned models (staging, campaign performance),
the daily attribution paths, and the daily attribution marts, which also read the Python fit that sits
between them. Daily ops hand dbt their partition range as vars, with the attribution settings.
"""

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from mm_pipelines.assets.partitions import DAILY_PARTITIONS, window_dates
from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.resources import mm_dbt_executable

ATTRIBUTION_PATH_MODELS = "int_conversion_paths int_attribution_journeys"
ATTRIBUTION_MART_MODELS = "attribution_credits attribution_daily attribution_data_driven"


class MMDbtTranslator(DagsterDbtTranslator):
    """Keys are <database>/<model> (e.g. marts/campaign_performance_daily), groups are dbt layers."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]


TRANSLATOR = MMDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _newest_source_mtime(project_dir: Path) -> float:
    files = [p for sub in ("models", "macros", "seeds", "tests") for p in (project_dir / sub).rglob("*") if p.is_file()]
    files.append(project_dir / "dbt_project.yml")
    return max(p.stat().st_mtime for p in files)


def mm_dbt_project() -> DbtProject:
    """The dbt project, with a manifest that is never older than the models it describes."""
    project_dir = dbt_project_dir()
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    manifest = Path(project.manifest_path)
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project_dir):
        # `mm-dbt parse` needs no warehouse, so it never waits on a running job.
        DbtCliResource(project_dir=project, dbt_executable=mm_dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()
    return project


def reprocess_days() -> int:
    """Late events: each daily run also rebuilds this many days before its range (MM_ATTRIBUTION_REPROCESS_DAYS)."""
    raw = os.environ.get("MM_ATTRIBUTION_REPROCESS_DAYS", "2")
    if not raw.isdigit():
        raise ValueError(f"MM_ATTRIBUTION_REPROCESS_DAYS={raw!r} must be a whole number of days")
    return int(raw)


def attribution_vars(context: AssetExecutionContext) -> dict:
    start, end = window_dates(context.partition_time_window)
    return AttributionConfig.from_env().dbt_vars() | {
        "attribution_start_date": (start - timedelta(days=reprocess_days())).isoformat(),
        "attribution_end_date": end.isoformat(),
    }


def build_dbt_assets() -> list:
    project = mm_dbt_project()
    common = dict(manifest=project.manifest_path, dagster_dbt_translator=TRANSLATOR, project=project)

    @dbt_assets(**common, exclude="tag:daily", name="mm_dbt_models")
    def mm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build", "--vars", json.dumps(AttributionConfig.from_env().dbt_vars())], context=context).stream()

    @dbt_assets(
        **common,
        select=ATTRIBUTION_PATH_MODELS,
        name="attribution_paths_dbt",
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def attribution_paths_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build", "--vars", json.dumps(attribution_vars(context))], context=context).stream()

    @dbt_assets(
        **common,
        select=ATTRIBUTION_MART_MODELS,
        name="attribution_marts_dbt",
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def attribution_marts_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build", "--vars", json.dumps(attribution_vars(context))], context=context).stream()

    return [mm_dbt_models, attribution_paths_dbt, attribution_marts_dbt]
