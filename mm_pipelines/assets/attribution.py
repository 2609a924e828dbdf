"""The data-driven attribution fit: journeys aggregated in ClickHouse, the exact solves in Python.

For each day D of the partition range, Markov removal effects and Shapley values are fitted on the
journeys dated in [D - fit_days + 1, D] and written to intermediate.attribution_fit, which the
attribution marts read to credit each conversion of day D.
"""


import time
from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
from dagster import (
    AssetDep,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from mm_pipelines.assets.automation import DAILY_AUTOMATION
from mm_pipelines.assets.dbt import rebuild_days
from mm_pipelines.assets.partitions import DAILY_PARTITIONS, days
from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.attribution.datadriven import fit_counts, index_journeys
from mm_pipelines.resources import ClickHouseResource
from mm_pipelines.stores.clickhouse import Session

ATTRIBUTION_FIT_KEY = ["intermediate", "attribution_fit"]
JOURNEYS_KEY = ["intermediate", "int_attribution_journeys"]

FIT_DDL = """
CREATE TABLE IF NOT EXISTS intermediate.attribution_fit (
    fit_date Date,
    model LowCardinality(String),
    scope LowCardinality(String),
    channel_set Array(String),
    channel String,
    value Float64,
    attributed_conversions Float64,
    journeys UInt64,
    converting_journeys UInt64,
    fit_days UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(fit_date)
ORDER BY (fit_date, model, scope, channel_set, channel)"""


def ensure_fit_table(session: Session) -> None:
    session.command("CREATE DATABASE IF NOT EXISTS intermediate")
    session.command(FIT_DDL)


def fit_rows(journeys: dict[date, dict[tuple[str, ...], tuple[int, int]]], first: date, end: date, config: AttributionConfig) -> list[dict]:
    """Rows of intermediate.attribution_fit for the days [first, end), from journeys by date.

    Journeys are indexed once; the window's counts per journey are kept as a running sum (add the day that
    enters, subtract the one that leaves), so each fit is array arithmetic over the chain the reference builds."""
    index = index_journeys({p for by_path in journeys.values() for p in by_path})
    position = {p: j for j, p in enumerate(index.paths)}
    by_day = {}
    for d, by_path in journeys.items():
        entries = [(position[p], c, n) for p, (c, n) in by_path.items() if p]
        if entries:
            ids, conv, null = zip(*entries)
            by_day[d] = (np.array(ids), np.array(conv, dtype=float), np.array(null, dtype=float))
    window_conv = np.zeros(len(index.paths))
    window_null = np.zeros(len(index.paths))

    def shift(day: date, sign: int) -> None:
        if day in by_day:
            ids, conv, null = by_day[day]
            np.add.at(window_conv, ids, sign * conv)
            np.add.at(window_null, ids, sign * null)

    for d in days(first - timedelta(days=config.fit_days - 1), first):
        shift(d, +1)
    rows = []
    for day in days(first, end):
        shift(day, +1)
        shift(day - timedelta(days=config.fit_days), -1)
        if not (window_conv.any() or window_null.any()):
            continue
        needed = {frozenset(path) for path, (c, _) in journeys.get(day, {}).items() if c and path}
        fit = fit_counts(index, window_conv, window_null, needed, config)
        base = {"fit_date": day, "journeys": int(window_conv.sum() + window_null.sum()),
                "converting_journeys": int(window_conv.sum()), "fit_days": config.fit_days}
        for model, channel, value, attributed in fit.channel_values:
            rows.append(base | {"model": model, "scope": "channel", "channel_set": [], "channel": channel,
                                "value": float(value), "attributed_conversions": float(attributed)})
        for channel_set, values in fit.shapley_by_set.items():
            for channel, value in values.items():
                rows.append(base | {"model": "shapley", "scope": "set", "channel_set": sorted(channel_set),
                                    "channel": channel, "value": float(value), "attributed_conversions": 0.0})
    return rows


def _fit_table(rows: list[dict]) -> pa.Table:
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    return pa.table({
        "fit_date": pa.array(col("fit_date"), pa.date32()),
        "model": pa.array(col("model"), pa.string()),
        "scope": pa.array(col("scope"), pa.string()),
        "channel_set": pa.array(col("channel_set"), pa.list_(pa.string())),
        "channel": pa.array(col("channel"), pa.string()),
        "value": pa.array(col("value"), pa.float64()),
        "attributed_conversions": pa.array(col("attributed_conversions"), pa.float64()),
        "journeys": pa.array(col("journeys"), pa.uint64()),
        "converting_journeys": pa.array(col("converting_journeys"), pa.uint64()),
        "fit_days": pa.array(col("fit_days"), pa.uint16()),
    })


def refit(session: Session, first: date, end: date, config: AttributionConfig) -> list[dict]:
    """Replace the fits of [first, end) with fresh ones; re-running gives the same rows."""
    ensure_fit_table(session)
    lo = first - timedelta(days=config.fit_days - 1)
    journeys: dict[date, dict[tuple[str, ...], tuple[int, int]]] = defaultdict(dict)
    for journey_date, channels, conv, null in session.query_rows(
        "SELECT journey_date, channels, converting, non_converting FROM intermediate.int_attribution_journeys "
        "WHERE journey_date >= {lo:Date} AND journey_date < {end:Date}",
        {"lo": lo, "end": end},
    ):
        journeys[journey_date][tuple(channels)] = (int(conv), int(null))
    rows = fit_rows(journeys, first, end, config)
    session.command(
        "DELETE FROM intermediate.attribution_fit WHERE fit_date >= {first:Date} AND fit_date < {end:Date}",
        {"first": first, "end": end},
        {"mutations_sync": 2, "lightweight_deletes_sync": 2},
    )
    if rows:
        session.insert_arrow("intermediate.attribution_fit", _fit_table(rows))
    return rows


@asset(
    key=ATTRIBUTION_FIT_KEY,
    group_name="intermediate",
    kinds={"python", "clickhouse"},
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    # A day's fit reads the journeys of the fit window before it (default 28 days).
    deps=[AssetDep(JOURNEYS_KEY, partition_mapping=TimeWindowPartitionMapping(start_offset=-27))],
    tags={"partitioning": "daily"},
    automation_condition=DAILY_AUTOMATION,
    description="Markov removal effects (exact absorbing-chain solve) and Shapley values per day, over the trailing fit window of journeys.",
)
def attribution_fit(context: AssetExecutionContext, clickhouse: ClickHouseResource) -> MaterializeResult:
    config = AttributionConfig.from_env()
    first, end = rebuild_days(context)
    started = time.perf_counter()
    with clickhouse.get_warehouse().session() as s:
        rows = refit(s, first, end, config)
    removal = {r["channel"]: round(r["value"], 4) for r in rows if r["model"] == "markov" and r["fit_date"] == end - timedelta(days=1)}
    return MaterializeResult(
        metadata={
            "days": (end - first).days,
            "rows": len(rows),
            "seconds": round(time.perf_counter() - started, 3),
            "fit_days": config.fit_days,
            "removal_effects_last_day": MetadataValue.json(removal),
        }
    )
