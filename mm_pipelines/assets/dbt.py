"""dbt models as Dagster assets: one asset per model, keyed by database and grouped by layer."""


from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from mm_pipelines.config import dbt_project_dir
from mm_pipelines.resources import mm_dbt_executable


class MMDbtTranslator(DagsterDbtTranslator):
    """Keys are <database>/<model> (e.g. marts/campaign_performance_daily), groups are dbt layers."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]


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


def build_dbt_assets():
    project = mm_dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        dagster_dbt_translator=MMDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
        project=project,
    )
    def mm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    return mm_dbt_models
