"""Spark backfill of the rule-based attribution models from the Parquet event archive.

Ops recompute history the warehouse no longer holds (the archive keeps seven years; ClickHouse need not):
Spark reads the archived days a range can look back on, computes the six rule-based models exactly as dbt
does (docs/attribution.md), and the result travels back through the object store into
backfill.attribution_credits, replacing the range's days. With `publish`, the rule-based rows of
marts.attribution_credits for those days are replaced by the backfilled ones.
"""

import io
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    MaterializeResult,
    asset,
)

from mm_pipelines.assets.partitions import DAILY_PARTITIONS, days, window_dates
from mm_pipelines.attribution.config import RULE_MODELS, AttributionConfig
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.resources import ClickHouseResource, ObjectStoreResource
from mm_pipelines.stores.objects import LocalObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables

BACKFILL_KEY = ["backfill", "attribution_credits"]
ARCHIVE_PREFIX = "raw/events"

COLUMNS = (
    "conversion_id, order_id, user_id, converted_at, conversion_date, model, touch_index, touch_count, touch_id, "
    "touch_at, touch_type, channel, campaign_id, creative_id, asset_id, credit_share, revenue, revenue_credit, currency"
)


class AttributionBackfillConfig(Config):
    """`publish`: also replace the rule-based rows of marts.attribution_credits for the backfilled days."""

    publish: bool = False


def _stage_archive(store, first, last, lookback_days: int, scratch: Path) -> Path:
    """A local directory holding the archive days Spark needs: the store's own folder when it is local."""
    if isinstance(store, LocalObjectStore):
        return store.root
    for day in days(first - timedelta(days=lookback_days), last + timedelta(days=1)):
        for key in store.list_keys(f"{ARCHIVE_PREFIX}/date={day.isoformat()}/"):
            target = scratch / "archive" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.get_bytes(key))
    return scratch / "archive"


def _month_rates_csv(warehouse, scratch: Path) -> Path:
    """The rates dbt converts with (staging.stg_fx_rates: loaded files, else the seed) for Spark, in the seed's
    columns; the seed itself until stg_fx_rates is built."""
    with warehouse.session() as s:
        if not s.scalar("EXISTS TABLE staging.stg_fx_rates"):
            return dbt_project_dir() / "seeds" / "fx_rates.csv"
        rows = s.query_rows(
            "SELECT currency, toString(month), toString(rate_to_reporting) FROM staging.stg_fx_rates "
            "ORDER BY currency, month"
        )
    path = scratch / "fx_rates.csv"
    path.write_text("currency,month,rate_to_reporting\n" + "".join(f"{c},{m},{r}\n" for c, m, r in rows))
    return path


@asset(
    key=BACKFILL_KEY,
    group_name="backfill",
    kinds={"spark", "clickhouse"},
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    description=(
        "The six rule-based attribution models recomputed by Spark from the Parquet event archive "
        "(docs/attribution.md)."
    ),
)
def attribution_spark_backfill(
    context: AssetExecutionContext,
    config: AttributionBackfillConfig,
    clickhouse: ClickHouseResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    from mm_pipelines.attribution.spark_backfill import run_backfill

    settings = AttributionConfig.from_env()
    start, end = window_dates(context.partition_time_window)
    first, last = start, end - timedelta(days=1)
    store = object_store.open()
    prefix = f"attribution/backfill/{first}_{last}/{context.run_id}"
    timings = {}
    with tempfile.TemporaryDirectory(prefix="mm-backfill-") as tmp:
        scratch = Path(tmp)
        t = time.perf_counter()
        archive = _stage_archive(store, first, last, settings.max_lookback_days, scratch)
        timings["stage_archive_s"] = time.perf_counter() - t
        t = time.perf_counter()
        rows = run_backfill(
            archive, _month_rates_csv(clickhouse.get_warehouse(), scratch), settings, first, last, scratch / "out"
        )
        timings["spark_s"] = time.perf_counter() - t
        t = time.perf_counter()
        keys = []
        for i, part in enumerate(sorted((scratch / "out").glob("*.parquet"))):
            key = f"{prefix}/part-{i:05d}.parquet"
            store.put_file(key, part)
            keys.append(key)
        timings["upload_s"] = time.perf_counter() - t
    context.log.info(f"Spark computed {rows:,} credits for {first} … {last}; results in {prefix}/")
    t = time.perf_counter()
    with clickhouse.get_warehouse().session() as s:
        ensure_tables(s)
        staging = f"backfill.attribution_credits_load_{context.run_id.replace('-', '_')}"
        s.command(f"DROP TABLE IF EXISTS {staging}")
        s.command(f"CREATE TABLE {staging} AS backfill.attribution_credits")
        try:
            for key in keys:
                table = pq.read_table(io.BytesIO(store.get_bytes(key)))
                if table.num_rows:
                    s.insert_arrow(staging, table, settings={"max_partitions_per_insert_block": 0})
            # Atomic per day: every day of the range is replaced; a day without conversions becomes empty.
            for day in days(first, end):
                s.command(
                    f"ALTER TABLE backfill.attribution_credits REPLACE PARTITION {{d:Date}} FROM {staging}",
                    {"d": day},
                    {"allow_replace_partition_from_empty_source": 1},
                )
        finally:
            s.command(f"DROP TABLE IF EXISTS {staging}")
        if config.publish:
            params = {"first": first, "last": last, "models": list(RULE_MODELS)}
            s.command(
                "DELETE FROM marts.attribution_credits WHERE conversion_date BETWEEN {first:Date} AND {last:Date} "
                "AND model IN {models:Array(String)}",
                params,
                {"mutations_sync": 2, "lightweight_deletes_sync": 2},
            )
            s.command(
                f"INSERT INTO marts.attribution_credits ({COLUMNS}) SELECT {COLUMNS} FROM backfill.attribution_credits "
                "WHERE conversion_date BETWEEN {first:Date} AND {last:Date}",
                params,
                {"max_partitions_per_insert_block": 0, "insert_deduplicate": 0},
            )
            context.log_event(
                AssetMaterialization(
                    asset_key=["marts", "attribution_credits"],
                    description=f"rule-based credits of {first} … {last} replaced by the Spark backfill",
                    metadata={"backfill_run": context.run_id},
                )
            )
    timings["load_s"] = time.perf_counter() - t
    return MaterializeResult(
        metadata={
            "rows": rows,
            "first": str(first),
            "last": str(last),
            "files": len(keys),
            "published": config.publish,
            **{k: round(v, 2) for k, v in timings.items()},
        }
    )
