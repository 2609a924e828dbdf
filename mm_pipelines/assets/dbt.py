"""dbt models as Dagster assets: one asset per model, keyed by database and grouped by layer.

dbt ops are split where the graph needs it: the unpartitioned models (staging, campaign performance),
the daily attribution paths, the daily attribution marts (which also read the Python fit that sits
between them), the monthly royalty ledger, and the royalty statements view over the Python statement
engine's table. Daily ops hand dbt their partition range as vars, with the attribution settings; the
ledger op hands it the period.
"""

import json
import os
import subprocess
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import AssetDep, AssetExecutionContext, AssetKey, AssetMaterialization, AssetSpec, BackfillPolicy, Output
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from mm_pipelines.assets.automation import DAILY_AUTOMATION, EVENTS_BY_DAY_KEY, RAW_DAYS_LOOKBACK, UPSTREAM_AUTOMATION
from mm_pipelines.assets.partitions import DAILY_PARTITIONS, MONTHLY_PARTITIONS, period_of, window_dates
from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.config import Settings, dbt_project_dir
from mm_pipelines.resources import ClickHouseResource, ObjectStoreResource, mm_dbt_executable
from mm_pipelines.royalties.warehouse import LEDGER_PREFIX, archive_period

ATTRIBUTION_PATH_MODELS = "int_conversion_paths int_attribution_journeys"
ATTRIBUTION_MART_MODELS = "attribution_credits attribution_daily attribution_data_driven"
# Daily models that read a day's events and the lookback before it: late events make them stale.
READS_RAW_DAYS = ("int_conversion_paths", "int_attribution_journeys")


class MMDbtTranslator(DagsterDbtTranslator):
    """Keys are <database>/<model> (e.g. marts/campaign_performance_daily), groups are dbt layers."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]

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
        if props["name"] in READS_RAW_DAYS:
            deps.append(AssetDep(EVENTS_BY_DAY_KEY, partition_mapping=RAW_DAYS_LOOKBACK))
        return spec.replace_attributes(
            deps=deps, automation_condition=DAILY_AUTOMATION, tags={**spec.tags, "partitioning": "daily"}
        )


TRANSLATOR = MMDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _newest_source_mtime(project_dir: Path) -> float:
    files = [p for sub in ("models", "macros", "seeds", "tests") for p in (project_dir / sub).rglob("*") if p.is_file()]
    files.append(project_dir / "dbt_project.yml")
    return max(p.stat().st_mtime for p in files)


def mm_dbt_project() -> DbtProject:
    """The dbt project, with a manifest under MM_HOME that is never older than the models it describes.

    The project folder is only read: it is the installed package, shared by every user of it."""
    settings = Settings.from_env()
    project_dir = dbt_project_dir()
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir, target_path=settings.dbt_target_path)
    manifest = Path(project.manifest_path)
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project_dir):
        # `mm-dbt parse` needs no warehouse, so it never waits on a running job.
        parse = subprocess.run(
            [mm_dbt_executable(), "parse", "--quiet", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
             "--target-path", str(settings.dbt_target_path), "--log-path", str(settings.dbt_log_path)],
            capture_output=True, text=True,
        )
        if parse.returncode != 0:
            raise RuntimeError(f"dbt cannot parse {project_dir}:\n{parse.stdout}{parse.stderr}")
    return project


def reprocess_days() -> int:
    """Late events: each daily run also rebuilds this many days before its range (MM_ATTRIBUTION_REPROCESS_DAYS)."""
    raw = os.environ.get("MM_ATTRIBUTION_REPROCESS_DAYS", "2")
    if not raw.isdigit():
        raise ValueError(f"MM_ATTRIBUTION_REPROCESS_DAYS={raw!r} must be a whole number of days")
    return int(raw)


def rebuild_days(context: AssetExecutionContext) -> tuple:
    """(first day, day after the last) a daily run rebuilds: its partitions plus the reprocessing window."""
    start, end = window_dates(context.partition_time_window)
    return start - timedelta(days=reprocess_days()), end


def attribution_vars(context: AssetExecutionContext) -> dict:
    first, end = rebuild_days(context)
    return AttributionConfig.from_env().dbt_vars() | {
        "attribution_start_date": first.isoformat(),
        "attribution_end_date": end.isoformat(),
    }


STAGED_RANGES_DDL = """CREATE TABLE IF NOT EXISTS raw.staged_offsets (
    topic LowCardinality(String), partition UInt32, end_offset UInt64
) ENGINE = ReplacingMergeTree(end_offset) ORDER BY (topic, partition)"""

NEW_RANGES_SQL = """
SELECT r.topic, r.partition, r.start_offset, r.end_offset
FROM raw.ingested_ranges AS r FINAL
LEFT JOIN (SELECT topic, partition, max(end_offset) AS end_offset FROM raw.staged_offsets GROUP BY topic, partition) AS w
    ON w.topic = r.topic AND w.partition = r.partition
WHERE r.start_offset >= w.end_offset"""


def ranges_to_stage(warehouse) -> list[tuple]:
    """Offset ranges ingested since staging was last built: the staging build about to run will include them."""
    with warehouse.session() as s:
        if not s.scalar("EXISTS TABLE raw.ingested_ranges"):
            return []
        s.command(STAGED_RANGES_DDL)
        return s.query_rows(NEW_RANGES_SQL)


def mark_staged_days(context: AssetExecutionContext, warehouse, ranges: list[tuple]):
    """Materialize staging/events_by_day for each day those ranges held events (late days too), then advance
    the staged offsets: exact, because ingested ranges tile each partition."""
    if not ranges:
        return
    with warehouse.session() as s:
        days = [d.isoformat() for (d,) in s.query_rows(
            "SELECT DISTINCT toDate(e.occurred_at) FROM raw.events AS e "
            "INNER JOIN (SELECT arrayJoin({ranges:Array(Tuple(String, UInt32, UInt64, UInt64))}) AS r) AS staged "
            "ON e.topic = staged.r.1 AND e.partition = staged.r.2 "
            "WHERE e.offset >= staged.r.3 AND e.offset < staged.r.4 ORDER BY 1",
            {"ranges": [tuple(r) for r in ranges]},
        )]
        ends: dict[tuple, int] = {}
        for topic, p, _, end in ranges:
            ends[(topic, p)] = max(end, ends.get((topic, p), 0))
        for (topic, p), end in ends.items():
            s.command("INSERT INTO raw.staged_offsets VALUES ({t:String}, {p:UInt32}, {e:UInt64})", {"t": topic, "p": p, "e": end})
    known = set(DAILY_PARTITIONS.get_partition_keys())
    for day in days:
        if day in known:
            yield AssetMaterialization(EVENTS_BY_DAY_KEY, partition=day)
    outside = [d for d in days if d not in known]
    if outside:
        context.log.warning(f"{len(outside)} event day(s) outside the daily partitions (first {outside[0]}): staged, not tracked for staleness")


# Exact and free for MergeTree tables (from their parts); NULL for views, whose count would run them.
ROW_COUNTS_SQL = """SELECT database, name, total_rows FROM system.tables
WHERE has({relations:Array(Tuple(String, String))}, (database, name)) AND total_rows IS NOT NULL"""


def with_row_counts(events: list, manifest: Mapping[str, Any], warehouse) -> list:
    """dbt's events, each table's materialization with its row count (`dagster/row_count`), for unpartitioned
    models, whose row count is the table's. Counted once dbt has finished: dbt holds the embedded warehouse
    for its whole command."""
    nodes = {e.output_name: manifest["nodes"][e.metadata["unique_id"].value] for e in events if isinstance(e, Output)}
    relations = {output: (node["schema"], node["alias"]) for output, node in nodes.items()}
    if not relations:
        return events
    with warehouse.session() as s:
        rows = {(db, name): int(n) for db, name, n in s.query_rows(ROW_COUNTS_SQL, {"relations": list(relations.values())})}
    return [
        event.with_metadata({**event.metadata, "dagster/row_count": rows[relations[event.output_name]]})
        if isinstance(event, Output) and relations[event.output_name] in rows else event
        for event in events
    ]


def build_dbt_assets() -> list:
    project = mm_dbt_project()
    common = dict(manifest=project.manifest_path, dagster_dbt_translator=TRANSLATOR, project=project)

    @dbt_assets(**common, exclude="tag:daily tag:royalty", name="mm_dbt_models")
    def mm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, clickhouse: ClickHouseResource):
        warehouse = clickhouse.get_warehouse()
        ranges = ranges_to_stage(warehouse)
        # The error is raised after the events: the models that were built are recorded even if a later one failed.
        build = dbt.cli(["build", "--vars", json.dumps(AttributionConfig.from_env().dbt_vars())], context=context, raise_on_error=False)
        yield from with_row_counts(list(build.stream()), build.manifest, warehouse)
        if (error := build.get_error()) is not None:
            raise error
        yield from mark_staged_days(context, warehouse, ranges)

    def daily_dbt_assets(name: str, select: str):
        @dbt_assets(**common, select=select, name=name, partitions_def=DAILY_PARTITIONS, backfill_policy=BackfillPolicy.single_run())
        def daily_models(context: AssetExecutionContext, dbt: DbtCliResource):
            yield from dbt.cli(["build", "--vars", json.dumps(attribution_vars(context))], context=context).stream()

        return daily_models

    @dbt_assets(**common, select="royalty_ledger", name="royalty_ledger_dbt", partitions_def=MONTHLY_PARTITIONS,
                backfill_policy=BackfillPolicy.multi_run(1))
    def royalty_ledger_dbt(context: AssetExecutionContext, dbt: DbtCliResource, clickhouse: ClickHouseResource, object_store: ObjectStoreResource):
        period = period_of(context.partition_key)
        yield from dbt.cli(["build", "--vars", json.dumps({"royalty_period": period})], context=context).stream()
        # The ledger is a record, not a derivation: the archive is what a disaster-recovery replay restores.
        with clickhouse.get_warehouse().session(context.log.info) as s:
            archive_period(s, object_store.open(), "marts.royalty_ledger", LEDGER_PREFIX, period)

    @dbt_assets(**common, select="royalty_statements", name="royalty_statements_dbt")
    def royalty_statements_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    return [
        mm_dbt_models,
        daily_dbt_assets("attribution_paths_dbt", ATTRIBUTION_PATH_MODELS),
        daily_dbt_assets("attribution_marts_dbt", ATTRIBUTION_MART_MODELS),
        royalty_ledger_dbt,
        royalty_statements_dbt,
    ]
