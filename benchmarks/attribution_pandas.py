"""The six rule-based attribution models as an analyst would write them in pandas: the benchmark's baseline.

Float shares and float revenue credit, no exact allocation (docs/attribution.md asks dbt and Spark for
that); otherwise the same eligibility (per-channel lookbacks, strict `touch_at < converted_at`), the same
(touch_at, touch_id) order and the same weights, so per-model channel totals match dbt's to float error.

Run as a script it reads raw.events from the embedded warehouse and prints one JSON line of timings,
which is how benchmarks/attribution.py runs it: in a child process, so running out of memory or time
ends the child, not the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

MS_PER_DAY = 86_400_000
COLUMNS = [
    "conversion_id",
    "user_id",
    "converted_at",
    "model",
    "touch_index",
    "touch_count",
    "touch_id",
    "touch_at",
    "touch_type",
    "channel",
    "campaign_id",
    "creative_id",
    "asset_id",
    "credit_share",
    "revenue",
    "revenue_credit",
]


def rule_based_credits(
    events: pd.DataFrame,
    lookback_ms_click: int,
    lookback_ms_impression: int,
    *,
    lookback_overrides: dict[tuple[str, str], int] | None = None,
    fx_rates: pd.DataFrame | None = None,
    half_life_days: float = 7.0,
    first_weight: float = 0.4,
    last_weight: float = 0.4,
) -> pd.DataFrame:
    """One row per conversion × model × credited touch; `lookback_overrides` maps (channel, touch_type) to days,
    `fx_rates` (currency, month, rate_to_reporting) converts revenue to the reporting currency."""
    events = events.drop_duplicates("event_id")
    conv = events.loc[
        events["event_type"] == "conversion", ["event_id", "user_id", "occurred_at", "revenue", "currency"]
    ]
    conv = conv.rename(columns={"event_id": "conversion_id", "occurred_at": "converted_at"})
    conv["revenue"] = conv["revenue"].astype(float).fillna(0.0)
    if fx_rates is not None:
        conv["month"] = conv["converted_at"].dt.tz_localize(None).dt.to_period("M").dt.to_timestamp()
        conv = conv.merge(fx_rates, on=["currency", "month"], how="left")
        conv["revenue"] = (conv["revenue"] * conv["rate_to_reporting"]).fillna(0.0).round(2)
    conv = conv[["conversion_id", "user_id", "converted_at", "revenue"]]

    touches = events.loc[
        events["event_type"].isin(["impression", "click"]),
        ["event_id", "user_id", "occurred_at", "event_type", "channel", "campaign_id", "creative_id", "asset_id"],
    ].rename(columns={"event_id": "touch_id", "occurred_at": "touch_at", "event_type": "touch_type"})
    touches["lookback_ms"] = np.where(touches["touch_type"] == "click", lookback_ms_click, lookback_ms_impression)
    for (channel, touch_type), days in (lookback_overrides or {}).items():
        touches.loc[(touches["channel"] == channel) & (touches["touch_type"] == touch_type), "lookback_ms"] = (
            days * MS_PER_DAY
        )

    pairs = conv.merge(touches, on="user_id")
    pairs["age_ms"] = (pairs["converted_at"] - pairs["touch_at"]) / pd.Timedelta(milliseconds=1)
    paths = pairs[(pairs["age_ms"] > 0) & (pairs["age_ms"] <= pairs["lookback_ms"])]
    paths = paths.sort_values(["conversion_id", "touch_at", "touch_id"], ignore_index=True)

    by_conversion = paths.groupby("conversion_id", sort=False)
    i = by_conversion.cumcount() + 1
    n = by_conversion["touch_id"].transform("size")
    last_non_direct = i.where(paths["channel"] != "direct").groupby(paths["conversion_id"]).transform("max").fillna(n)
    first, last = first_weight, last_weight
    weights = {
        "first_touch": (i == 1).astype(float),
        "last_touch": (i == n).astype(float),
        "last_non_direct": (i == last_non_direct).astype(float),
        "linear": pd.Series(1.0, index=paths.index),
        "position_based": pd.Series(
            np.select(
                [n == 1, n == 2, i == 1, i == n],
                [1.0, np.where(i == 1, first / (first + last), last / (first + last)), first, last],
                (1 - first - last) / (n - 2).clip(lower=1),
            ),
            index=paths.index,
        ),
        "time_decay": 2.0 ** (-(paths["age_ms"] / 1000) / (half_life_days * 86400)),
    }
    paths = paths.assign(touch_index=i, touch_count=n)
    frames = []
    for model, w in weights.items():
        share = w / w.groupby(paths["conversion_id"]).transform("sum")
        credited = paths.assign(model=model, credit_share=share, revenue_credit=share * paths["revenue"])
        frames.append(credited[credited["credit_share"] > 0])

    unattributed = conv[~conv["conversion_id"].isin(paths["conversion_id"])].assign(
        touch_index=0,
        touch_count=0,
        touch_id="",
        touch_at=pd.NaT,
        touch_type="none",
        channel="unattributed",
        campaign_id="",
        creative_id="",
        asset_id="",
        credit_share=1.0,
    )
    unattributed["revenue_credit"] = unattributed["revenue"]
    frames += [unattributed.assign(model=model) for model in weights]
    return pd.concat([frame[COLUMNS] for frame in frames], ignore_index=True)


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since start or the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    """Read raw.events (1/sample of the users when sample > 1), compute, print timings and totals as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("warehouse", help="chdb:///path of the embedded warehouse")
    parser.add_argument("--sample", type=int, default=1, help="keep the users with cityHash64(user_id) %% sample = 0")
    args = parser.parse_args()

    from mm_pipelines.attribution.config import AttributionConfig
    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.stores.clickhouse import Warehouse

    config = AttributionConfig.from_env()
    fx = pd.read_csv(dbt_project_dir() / "seeds" / "fx_rates.csv", parse_dates=["month"])
    where = f"WHERE cityHash64(user_id) % {args.sample} = 0" if args.sample > 1 else ""
    t0 = time.perf_counter()
    arrow = Warehouse(args.warehouse).query_arrow(
        "SELECT event_id, event_type, occurred_at, user_id, channel, campaign_id, creative_id, asset_id, revenue, "
        f"currency FROM raw.events {where}"
    )
    events = arrow.to_pandas()
    del arrow
    read_s = time.perf_counter() - t0
    rss_after_read = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on is the compute's

    t0 = time.perf_counter()
    credits = rule_based_credits(
        events,
        config.click_lookback_days * MS_PER_DAY,
        config.impression_lookback_days * MS_PER_DAY,
        lookback_overrides=config.lookback_overrides,
        fx_rates=fx,
        half_life_days=config.half_life_days,
        first_weight=config.position_first_weight,
        last_weight=config.position_last_weight,
    )
    compute_s = time.perf_counter() - t0
    totals = credits.groupby(["model", "channel"])[["credit_share", "revenue_credit"]].sum()
    json.dump(
        {
            "events": len(events),
            "read_s": read_s,
            "compute_s": compute_s,
            "rss_after_read_mb": rss_after_read,
            "peak_compute_mb": _status_mb("VmHWM"),
            "rows": len(credits),
            "totals": [[m, c, s, r] for (m, c), (s, r) in totals.iterrows()],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
