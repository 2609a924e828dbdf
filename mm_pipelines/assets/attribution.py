"""The data-driven attribution fit: journeys aggregated in ClickHouse, the exact solves in Python.

For each day D of the partition range, Markov removal effects and Shapley values are fitted on the
journeys dated in [D - fit_days + 1, D] and written to intermediate.attribution_fit, which the
attribution marts read to credit each conversion of day D.
"""

import time
from collections import defaultdict
from datetime import date, timedelta

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
from mm_pipelines.assets.dbt import CREDITS_FIRST, rebuild_days
from mm_pipelines.assets.partitions import DAILY_PARTITIONS, days
from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.attribution.datadriven import WindowSums
from mm_pipelines.resources import ClickHouseResource
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.warehouse_tables import ensure_tables

ATTRIBUTION_FIT_KEY = ["intermediate", "attribution_fit"]
JOURNEYS_KEY = ["intermediate", "int_attribution_journeys"]


def window_sums_by_day(
    session: Session, lo: date, end: date
) -> tuple[dict[date, WindowSums], dict[date, set[frozenset[str]]]]:
    """Each day's journeys in [lo, end) reduced in ClickHouse to the sums both fits read (over one
    channel and channel-set index), and the channel sets of each day's converting paths."""
    params = {"lo": lo, "end": end}
    where = "journey_date >= {lo:Date} AND journey_date < {end:Date} AND length(channels) > 0"
    source = f"intermediate.int_attribution_journeys WHERE {where}"
    transitions = session.query_rows(
        f"""SELECT journey_date, if(i = 1, NULL, channels[i - 1]) AS src, channels[i] AS dst, """
        f"""sum(converting + non_converting)
        FROM intermediate.int_attribution_journeys ARRAY JOIN arrayEnumerate(channels) AS i
        WHERE {where} GROUP BY journey_date, src, dst""",
        params,
    )
    terminals = session.query_rows(
        f"SELECT journey_date, channels[-1] AS last, sum(converting), sum(non_converting) "
        f"FROM {source} GROUP BY journey_date, last",
        params,
    )
    sets = session.query_rows(
        f"""SELECT journey_date, arraySort(arrayDistinct(channels)) AS s, sum(converting), """
        f"""sum(converting + non_converting)
        FROM {source} GROUP BY journey_date, s""",
        params,
    )
    channels = sorted({c for _, c, _, _ in terminals} | {c for _, _, c, _ in transitions})
    state = {c: i + 1 for i, c in enumerate(channels)}
    channel_sets = sorted({frozenset(s) for _, s, _, _ in sets}, key=sorted)
    set_index = {s: i for i, s in enumerate(channel_sets)}
    by_day: dict[date, WindowSums] = defaultdict(lambda: WindowSums.zeros(channels, channel_sets))
    for d, src, dst, w in transitions:
        by_day[d].counts[state[src] if src is not None else 0, state[dst]] += float(w)
    for d, last, conv, null in terminals:
        by_day[d].to_conversion[state[last]] += float(conv)
        by_day[d].to_null[state[last]] += float(null)
    needed: dict[date, set[frozenset[str]]] = defaultdict(set)
    for d, s, conv, total in sets:
        i = set_index[frozenset(s)]
        by_day[d].set_converting[i] += float(conv)
        by_day[d].set_total[i] += float(total)
        if conv:
            needed[d].add(frozenset(s))
    return dict(by_day), needed


def fit_rows(
    by_day: dict[date, WindowSums],
    needed: dict[date, set[frozenset[str]]],
    first: date,
    end: date,
    config: AttributionConfig,
) -> list[dict]:
    """Rows of intermediate.attribution_fit for the days [first, end) from each day's journey sums.

    The window is a running sum (add the day that enters, subtract the one that leaves): exact, since every
    entry is a sum of whole journey counts in Float64."""
    if not by_day:
        return []
    any_day = next(iter(by_day.values()))
    window = WindowSums.zeros(any_day.channels, any_day.channel_sets)

    def shift(d: date, sign: int) -> None:
        if d in by_day:
            window.add(by_day[d], sign)

    for d in days(first - timedelta(days=config.fit_days - 1), first):
        shift(d, +1)
    rows = []
    for d in days(first, end):
        shift(d, +1)
        shift(d - timedelta(days=config.fit_days), -1)
        converting = window.to_conversion.sum()
        total = converting + window.to_null.sum()
        if not total:
            continue
        fit = window.fit(needed.get(d, set()), config)
        base = {
            "fit_date": d,
            "journeys": int(total),
            "converting_journeys": int(converting),
            "fit_days": config.fit_days,
        }
        for model, channel, value, attributed in fit.channel_values:
            rows.append(
                base
                | {
                    "model": model,
                    "scope": "channel",
                    "channel_set": [],
                    "channel": channel,
                    "value": float(value),
                    "attributed_conversions": float(attributed),
                }
            )
        for channel_set, values in fit.shapley_by_set.items():
            for channel, value in values.items():
                rows.append(
                    base
                    | {
                        "model": "shapley",
                        "scope": "set",
                        "channel_set": sorted(channel_set),
                        "channel": channel,
                        "value": float(value),
                        "attributed_conversions": 0.0,
                    }
                )
    return rows


def _fit_table(rows: list[dict]) -> pa.Table:
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    return pa.table(
        {
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
        }
    )


def refit(session: Session, first: date, end: date, config: AttributionConfig) -> list[dict]:
    """Replace the fits of [first, end) with fresh ones; re-running gives the same rows."""
    ensure_tables(session)
    by_day, needed = window_sums_by_day(session, first - timedelta(days=config.fit_days - 1), end)
    rows = fit_rows(by_day, needed, first, end, config)
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
    op_tags=CREDITS_FIRST,
    automation_condition=DAILY_AUTOMATION,
    description=(
        "Markov removal effects (exact absorbing-chain solve) and Shapley values per day, "
        "over the trailing fit window of journeys."
    ),
)
def attribution_fit(context: AssetExecutionContext, clickhouse: ClickHouseResource) -> MaterializeResult:
    config = AttributionConfig.from_env()
    first, end = rebuild_days(context)
    started = time.perf_counter()
    with clickhouse.get_warehouse().session() as s:
        rows = refit(s, first, end, config)
    removal = {
        r["channel"]: round(r["value"], 4)
        for r in rows
        if r["model"] == "markov" and r["fit_date"] == end - timedelta(days=1)
    }
    return MaterializeResult(
        metadata={
            "days": (end - first).days,
            "rows": len(rows),
            "seconds": round(time.perf_counter() - started, 3),
            "fit_days": config.fit_days,
            "removal_effects_last_day": MetadataValue.json(removal),
        }
    )
