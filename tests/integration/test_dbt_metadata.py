"""What the Dagster UI shows for a dbt model: the rows the model wrote (a daily model's rows in the days it
rebuilt, another table's all), counted from the warehouse's parts once dbt has let go of it, and the column
types the models declare (dagster-dbt turns the manifest's data_type into dagster/column_schema)."""

from datetime import date

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, Output, define_asset_job

from mm_pipelines.assets.dbt import with_row_counts
from mm_pipelines.config import dbt_project_dir
from mm_pipelines.stores.clickhouse import Warehouse

pytestmark = pytest.mark.integration


def test_a_daily_model_counts_the_days_it_rebuilt_and_a_table_all_its_rows(tmp_path):
    warehouse = Warehouse(f"chdb://{tmp_path / 'warehouse'}")
    with warehouse.session() as s:
        s.command("CREATE DATABASE IF NOT EXISTS marts")
        for name in ("daily_t", "plain_t"):
            s.command(f"CREATE TABLE marts.{name} (d Date, n UInt32) ENGINE = MergeTree PARTITION BY d ORDER BY n")
            s.command(f"INSERT INTO marts.{name} SELECT toDate('2026-11-18') + number % 5, number FROM numbers(50)")
        s.command("CREATE VIEW marts.view_v AS SELECT * FROM marts.plain_t")
    nodes = {
        "model.mm.daily_t": {"schema": "marts", "alias": "daily_t", "config": {"tags": ["daily"]}},
        "model.mm.plain_t": {"schema": "marts", "alias": "plain_t", "config": {"tags": []}},
        "model.mm.view_v": {"schema": "marts", "alias": "view_v", "config": {"tags": []}},
    }
    events = [Output(None, output_name=uid.split(".")[-1], metadata={"unique_id": uid}) for uid in nodes]
    counted = with_row_counts(events, {"nodes": nodes}, warehouse, (date(2026, 11, 19), date(2026, 11, 21)))
    rows = {e.output_name: e.metadata.get("dagster/row_count") for e in counted}
    # Days 19 and 20 of the five: 20 of the daily table's 50 rows; the plain table's all; no count runs a view.
    assert {k: (v.value if v else None) for k, v in rows.items()} == {"daily_t": 20, "plain_t": 50, "view_v": None}


def test_a_seed_materialization_shows_its_rows_and_declared_columns(mm_home):
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    seed = AssetKey(["reference", "fx_rates"])
    job = define_asset_job("seed", selection=AssetSelection.assets(seed))
    job = job.resolve(asset_graph=defs.resolve_asset_graph())
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
    [materialization] = result.asset_materializations_for_node("mm_dbt_models")
    csv_rows = len((dbt_project_dir() / "seeds" / "fx_rates.csv").read_text().strip().splitlines()) - 1
    assert materialization.metadata["dagster/row_count"].value == csv_rows
    # The asset's definition carries the declared columns: the UI shows them without opening the warehouse.
    spec = defs.resolve_assets_def(seed).specs_by_key[seed]
    columns = {c.name: c.type for c in spec.metadata["dagster/column_schema"].columns}
    assert set(columns) >= {"currency", "month", "rate_to_reporting"} and columns["month"] == "Date"
