"""dbt models as Dagster assets: one asset per model, keyed by database and grouped by layer.

dbt ops are split where the graph needs it: the unpartitioned models (seeds, spend, sales), the daily event models
(a day's events staged, then its attribution paths and campaign performance), the daily attribution marts (which
also read the Python fit that sits between them), the monthly royalty ledger, and the royalty statements view over
the Python statement engine's table. Each op runs one `dbt build` through dagster-dbt's DbtCliResource. The run's
values (its partition range, the royalty period, the attribution settings) reach the models as environment
variables DBT_VAR_<NAME> (read with run_var, dbt_project/macros/run_var.sql, only when dbt runs the SQL), not
--vars: dbt's saved parse then holds for every run, where --vars throw it away."""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dagster import AssetDep, AssetExecutionContext, AssetKey, AssetSpec, BackfillPolicy, Output
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from filelock import FileLock

from mm_pipelines.assets.automation import DAILY_AUTOMATION, EVENTS_BY_DAY_KEY, TOUCH_LOOKBACK, UPSTREAM_AUTOMATION
from mm_pipelines.assets.partitions import DAILY_PARTITIONS, MONTHLY_PARTITIONS, period_of, window_dates
from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.config import Settings, dbt_project_dir
from mm_pipelines.resources import ClickHouseResource, ObjectStoreResource, mm_dbt_executable
from mm_pipelines.royalties.warehouse import LEDGER_PREFIX, archive_period
from mm_pipelines.stores.warehouse_tables import ensure_tables

# A live cycle is two dbt commands: the days' events staged with what reads only them (their paths, campaign
# performance), then, after the fit, the attribution marts. Campaign performance sits in the first: in the second,
# it would hold the credits back behind stg_events' blocking checks wherever those run (platform_job).
EVENT_DAY_MODELS = (
    "stg_events int_conversions int_touchpoints int_conversion_paths int_attribution_journeys "
    "campaign_performance_daily"
)
ATTRIBUTION_MART_MODELS = "attribution_credits attribution_daily attribution_data_driven"
# The steps that turn a conversion into its credits (the daily dbt ops and the fit) run before the run's other
# ready steps, checks of other assets whose first Great Expectations suite spends about 4 s importing it: Dagster
# starts the highest priority first.
CREDITS_FIRST = {"dagster/priority": "1"}
TOUCHPOINTS_KEY = AssetKey(["intermediate", "int_touchpoints"])
# Daily models that read a day's touches and the lookback before it: a late touch makes all those days stale.
READS_TOUCH_LOOKBACK = ("int_conversion_paths", "int_attribution_journeys")


class MMDbtTranslator(DagsterDbtTranslator):
    """Keys are <database>/<model> (e.g. marts/campaign_performance_daily), groups are dbt layers."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # A source's group is its meta's (sources.yml: meta.dagster.group); a model's is its dbt layer.
        return (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("group") or dbt_resource_props["schema"]

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec
        if "royalty" in props.get("tags", []):
            # Royalties post money: they run on the monthly schedule or on demand, never on data arrival.
            return spec.replace_attributes(group_name="royalty")
        if "daily" not in props.get("tags", []):
            return spec.replace_attributes(automation_condition=UPSTREAM_AUTOMATION)
        deps = list(spec.deps)
        if props["name"] == "stg_events":
            # A day is restaged when it received events (raw/events itself is one unpartitioned asset).
            deps.append(AssetDep(EVENTS_BY_DAY_KEY))
        if props["name"] in READS_TOUCH_LOOKBACK:
            deps = [
                AssetDep(TOUCHPOINTS_KEY, partition_mapping=TOUCH_LOOKBACK) if dep.asset_key == TOUCHPOINTS_KEY else dep
                for dep in deps
            ]
        return spec.replace_attributes(
            deps=deps, automation_condition=DAILY_AUTOMATION, tags={**spec.tags, "partitioning": "daily"}
        )


TRANSLATOR = MMDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def mm_dbt_project() -> DbtProject:
    """The dbt project, its manifest under MM_HOME: the project folder is only read (it is the installed package,
    shared by every user of it).

    The manifest is prepared once per MM_HOME, the first time it is missing (a new home, `mm demo`), as a deployment
    ships one built beforehand (`dagster-dbt project prepare-and-package`). Not at every load under `dagster dev`
    as DbtProject.prepare_if_dev does: there every run worker loads the definitions too, and a parse in each run
    (about 10 s here) breaks the conversion → credits objective. dbt re-parses edited SQL itself when it runs; after
    adding, removing or re-configuring a model, run `mm-dbt parse` (or delete the manifest) and reload."""
    project_dir = dbt_project_dir()
    target = Settings.from_env().dbt_target_path
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir, target_path=target)
    if not project.manifest_path.exists():
        project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        # One preparation at a time per MM_HOME: `dagster dev` loads the definitions in several processes at once.
        with FileLock(project.manifest_path.with_name(".prepare.lock")):
            if not project.manifest_path.exists():
                prepare(project)
    return project


def prepare(project: DbtProject) -> None:
    """dagster-dbt's own preparation (DagsterDbtProjectPreparer: `parse --quiet` with the project's target path),
    run by `mm-dbt` (the stock preparer runs whichever `dbt` comes first on PATH): every run's commands start from
    this parse with nothing to re-parse. Parsing needs no warehouse."""
    resource = DbtCliResource(project_dir=project, dbt_executable=mm_dbt_executable())
    parse = resource.cli(["parse", "--quiet"], target_path=project.target_path, raise_on_error=False)
    parse.wait()
    if not parse.is_successful() or not project.manifest_path.exists():
        raise RuntimeError(f"dbt cannot parse {project.project_dir}: see {project.target_path / 'dbt.log'}")


def rebuild_days(context: AssetExecutionContext) -> tuple[date, date]:
    """(first day, day after the last) a daily run rebuilds: its partitions plus the reprocessing window for late
    events (MM_ATTRIBUTION_REPROCESS_DAYS)."""
    start, end = window_dates(context.partition_time_window)
    return start - timedelta(days=Settings.from_env().attribution_reprocess_days), end


def run_env(days: tuple[date, date] | None = None, period: str | None = None) -> dict[str, str]:
    """The run's values for the models, as the environment variables run_var reads (DBT_VAR_<NAME>, JSON). Every
    command sets all of them, an absent one empty (run_var then falls back to the var's default), so that no
    DBT_VAR_ in the surrounding environment overrides the run's own values."""
    values = AttributionConfig.from_env().dbt_vars() | {
        "attribution_start_date": days[0].isoformat() if days else None,
        "attribution_end_date": days[1].isoformat() if days else None,
        "royalty_period": period,
    }
    return {f"DBT_VAR_{name.upper()}": "" if value is None else json.dumps(value) for name, value in values.items()}


def dbt_command(
    dbt: DbtCliResource, args: list[str], context: AssetExecutionContext, env: Mapping[str, str]
) -> DbtCliInvocation:
    """`dbt.cli` with `env` in the command's environment: DbtCliResource.cli passes the worker's own environment
    and takes none of its own, so `env` is set around the call (which starts dbt) and restored right after.
    DBT_TARGET_PATH names MM_HOME's dbt target: dagster-dbt gives each command its own folder under it (artifacts
    and dbt.log) and seeds it with the partial parse found there."""
    with command_env({"DBT_TARGET_PATH": str(Settings.from_env().dbt_target_path), **env}):
        return dbt.cli(args, context=context, raise_on_error=False)


@contextmanager
def command_env(env: Mapping[str, str]) -> Iterator[None]:
    """`env` in this process's environment, put back as it was after: DbtCliResource.cli hands dbt a copy of it."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dbt_build(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse,
    env: Mapping[str, str],
    days: tuple[date, date] | None = None,
) -> Iterator:
    """One `dbt build` of the op's selection: its events with row counts, then dbt's error if it failed (after
    the events, so the models that were built are recorded even if a later one failed)."""
    build = dbt_command(dbt, ["build"], context, env)
    yield from with_row_counts(list(build.stream()), build.manifest, warehouse, days)
    if (error := build.get_error()) is not None:
        raise error


# Exact and free for MergeTree tables (from their parts): a daily table's rows in the days rebuilt (partition ids
# of a Date are YYYYMMDD), another table's all; none for views (total_rows NULL), whose count would run them.
ROW_COUNTS_SQL = """
SELECT t.database, t.name,
    if(has({daily:Array(Tuple(String, String))}, (t.database, t.name)), p.rows, t.total_rows)
FROM system.tables AS t
LEFT JOIN (
    SELECT database, table, sum(rows) AS rows FROM system.parts
    WHERE active AND partition_id >= {first:String} AND partition_id < {end:String} GROUP BY database, table
) AS p ON p.database = t.database AND p.table = t.name
WHERE has({relations:Array(Tuple(String, String))}, (t.database, t.name)) AND t.total_rows IS NOT NULL"""


def with_row_counts(
    events: list, manifest: Mapping[str, Any], warehouse, days: tuple[date, date] | None = None
) -> list:
    """dbt's events, each table's materialization with the rows the model wrote (`dagster/row_count`): a daily
    model's rows in `days` (the days rebuilt), another table's all. Counted once dbt has finished, through the
    platform's warehouse resource: dbt holds the embedded warehouse for its whole command, so dagster-dbt's
    fetch_row_counts (a count(*) per model while dbt runs, through an adapter in this process) cannot open it,
    and it would count a daily table's every day."""
    nodes = {e.output_name: manifest["nodes"][e.metadata["unique_id"].value] for e in events if isinstance(e, Output)}
    relations = {output: (node["schema"], node["alias"]) for output, node in nodes.items()}
    if not relations:
        return events
    daily = [relations[o] for o, node in nodes.items() if days and "daily" in node["config"].get("tags", [])]
    first, end = (d.strftime("%Y%m%d") for d in days) if days else ("", "")
    with warehouse.session() as s:
        rows = {
            (db, name): int(n)
            for db, name, n in s.query_rows(
                ROW_COUNTS_SQL, {"relations": list(relations.values()), "daily": daily, "first": first, "end": end}
            )
        }
    return [
        event.with_metadata({**event.metadata, "dagster/row_count": rows[relations[event.output_name]]})
        if isinstance(event, Output) and relations[event.output_name] in rows
        else event
        for event in events
    ]


def build_dbt_assets() -> list:
    project = mm_dbt_project()
    common = dict(manifest=project.manifest_path, dagster_dbt_translator=TRANSLATOR, project=project)

    @dbt_assets(**common, exclude="tag:daily tag:royalty", name="mm_dbt_models")
    def mm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, clickhouse: ClickHouseResource):
        warehouse = clickhouse.get_warehouse()
        # The raw tables these read exist before anything was loaded into them (the loads create them too).
        with warehouse.session() as s:
            ensure_tables(s)
        yield from dbt_build(context, dbt, warehouse, run_env())

    def daily_dbt_assets(name: str, select: str):
        @dbt_assets(
            **common,
            select=select,
            name=name,
            partitions_def=DAILY_PARTITIONS,
            backfill_policy=BackfillPolicy.single_run(),
            op_tags=CREDITS_FIRST,
        )
        def daily_models(context: AssetExecutionContext, dbt: DbtCliResource, clickhouse: ClickHouseResource):
            days = rebuild_days(context)
            yield from dbt_build(context, dbt, clickhouse.get_warehouse(), run_env(days=days), days)

        return daily_models

    @dbt_assets(
        **common,
        select="royalty_ledger",
        name="royalty_ledger_dbt",
        partitions_def=MONTHLY_PARTITIONS,
        backfill_policy=BackfillPolicy.multi_run(1),
    )
    def royalty_ledger_dbt(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        clickhouse: ClickHouseResource,
        object_store: ObjectStoreResource,
    ):
        period = period_of(context.partition_key)
        yield from dbt_build(context, dbt, clickhouse.get_warehouse(), run_env(period=period))
        # The ledger is a record, not a derivation: the archive is what a disaster-recovery replay restores.
        with clickhouse.get_warehouse().session(context.log.info) as s:
            archive_period(s, object_store.open(), "marts.royalty_ledger", LEDGER_PREFIX, period)

    @dbt_assets(**common, select="royalty_statements", name="royalty_statements_dbt")
    def royalty_statements_dbt(context: AssetExecutionContext, dbt: DbtCliResource, clickhouse: ClickHouseResource):
        yield from dbt_build(context, dbt, clickhouse.get_warehouse(), run_env())

    return [
        mm_dbt_models,
        daily_dbt_assets("event_days_dbt", EVENT_DAY_MODELS),
        daily_dbt_assets("attribution_marts_dbt", ATTRIBUTION_MART_MODELS),
        royalty_ledger_dbt,
        royalty_statements_dbt,
    ]


def dbt_source_specs(produced: set[AssetKey]) -> list[AssetSpec]:
    """The dbt sources no asset of the platform produces (the reports `mm` commands load), as external assets
    with their group, description and columns from sources.yml: dagster-dbt 0.29 makes a source only an
    upstream key of the dbt assets, which the UI shows in "default" and undescribed."""
    project = mm_dbt_project()
    manifest = json.loads(Path(project.manifest_path).read_text(encoding="utf-8"))
    specs = (TRANSLATOR.get_asset_spec(manifest, unique_id, project) for unique_id in manifest["sources"])
    return [spec for spec in specs if spec.key not in produced]
