"""The plain-Python reference engine: docs/attribution.md line by line, the oracle dbt and Spark are tested against.

Clarity over speed: per-user lists, integer milliseconds for every time comparison, integer units and cents.
"""

from __future__ import annotations

import csv
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from math import floor
from pathlib import Path

from mm_pipelines.attribution.config import (
    DIRECT,
    MODELS,
    SHARE_UNITS,
    UNATTRIBUTED,
    AttributionConfig,
)
from mm_pipelines.attribution.datadriven import DayFit, fit_window, touch_weights

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Touch:
    touch_id: str
    user_id: str
    touch_at: datetime
    touch_type: str
    channel: str
    campaign_id: str
    creative_id: str
    asset_id: str


@dataclass(frozen=True)
class Conversion:
    conversion_id: str
    order_id: str
    user_id: str
    converted_at: datetime
    revenue_cents: int


def epoch_ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


def parse_ts(value: str) -> datetime:
    """'YYYY-MM-DDTHH:MM:SS.mmmZ' -> aware UTC datetime (millisecond precision)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def load_fx_rates(path: Path | str) -> dict[tuple[str, date], Decimal]:
    with Path(path).open(newline="") as f:
        return {
            (row["currency"], date.fromisoformat(row["month"])): Decimal(row["rate_to_reporting"])
            for row in csv.DictReader(f)
        }


def revenue_cents(revenue: str | None, currency: str | None, at: datetime, fx: dict[tuple[str, date], Decimal]) -> int:
    """revenue × the rate of the conversion's UTC month, half-to-even to the cent; 0 without revenue or rate."""
    rate = fx.get((currency or "", date(at.year, at.month, 1)))
    if rate is None or revenue in (None, ""):
        return 0
    try:
        amount = (Decimal(revenue) * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        return 0
    return int(amount * 100)


def from_events(events: Iterable[dict], fx: dict[tuple[str, date], Decimal]) -> tuple[list[Touch], list[Conversion]]:
    """Touches and conversions of canonical events; the first delivery of an event_id wins."""
    seen: set[str] = set()
    touches: list[Touch] = []
    conversions: list[Conversion] = []
    for e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        at = parse_ts(e["occurred_at"])
        if e["event_type"] in ("impression", "click"):
            touches.append(
                Touch(
                    e["event_id"],
                    e["user_id"],
                    at,
                    e["event_type"],
                    e.get("channel") or "",
                    e.get("campaign_id") or "",
                    e.get("creative_id") or "",
                    e.get("asset_id") or "",
                )
            )
        elif e["event_type"] == "conversion":
            conversions.append(
                Conversion(
                    e["event_id"],
                    e.get("order_id") or "",
                    e["user_id"],
                    at,
                    revenue_cents(e.get("revenue"), e.get("currency"), at, fx),
                )
            )
    return touches, conversions


def apply_transforms(path: list[Touch], transforms: Iterable[str]) -> list[Touch]:
    """The configured path transforms, in order, each on what the previous one left."""
    for name in transforms:
        all_direct = all(t.channel == DIRECT for t in path)
        if name == "collapse_repeats":
            path = [t for i, t in enumerate(path) if i == 0 or t.channel != path[i - 1].channel]
        elif name == "first_occurrence":
            first: dict[str, Touch] = {}
            for t in path:
                first.setdefault(t.channel, t)
            path = list(first.values())
        elif name == "drop_direct" and not all_direct:
            path = [t for t in path if t.channel != DIRECT]
        elif name == "drop_trailing_direct" and not all_direct:
            while path[-1].channel == DIRECT:
                path = path[:-1]
    return path


def is_eligible(touch: Touch, conversion: Conversion, config: AttributionConfig) -> bool:
    gap = epoch_ms(conversion.converted_at) - epoch_ms(touch.touch_at)
    return (
        touch.user_id == conversion.user_id
        and gap > 0
        and gap <= config.lookback_days(touch.channel, touch.touch_type) * DAY_MS
    )


def conversion_path(conversion: Conversion, user_touches_sorted: list[Touch], config: AttributionConfig) -> list[Touch]:
    """Eligible touches of the conversion's user, ordered by (touch_at, touch_id), then transformed."""
    eligible = [t for t in user_touches_sorted if is_eligible(t, conversion, config)]
    eligible.sort(key=lambda t: (t.touch_at, t.touch_id))
    return apply_transforms(eligible, config.path_transforms)


def allocate_shares(weights: list[float]) -> list[int]:
    """Integer units of 1e-9 summing to SHARE_UNITS: floor, then largest remainders (ties to the lower index)."""
    if not weights:
        return []
    total = 0.0
    for w in weights:  # sequential Float64 sum, in touch_index order
        total += w
    if total == 0:
        return allocate_shares([1.0] * len(weights))
    raw = [w / total * 1e9 for w in weights]
    units = [floor(r) for r in raw]
    return _largest_remainder(units, [r - u for r, u in zip(raw, units)], SHARE_UNITS - sum(units))


def allocate_cents(revenue_cents: int, units: list[int]) -> list[int]:
    """Integer cents summing to revenue_cents, by the same largest-remainder rule in exact integers."""
    products = [revenue_cents * u for u in units]
    cents = [p // SHARE_UNITS for p in products]
    return _largest_remainder(cents, [p % SHARE_UNITS for p in products], revenue_cents - sum(cents))


def _largest_remainder(base: list[int], remainders: list, leftover: int) -> list[int]:
    if not 0 <= leftover <= len(base):
        raise ValueError(f"cannot hand out {leftover} leftover units over {len(base)} touches")
    order = sorted(range(len(base)), key=lambda i: (-remainders[i], i))
    out = list(base)
    for i in order[:leftover]:
        out[i] += 1
    return out


def rule_weights(model: str, path: list[Touch], conversion: Conversion, config: AttributionConfig) -> list[float]:
    n = len(path)
    if model == "first_touch":
        return [1.0 if i == 0 else 0.0 for i in range(n)]
    if model == "last_touch":
        return [1.0 if i == n - 1 else 0.0 for i in range(n)]
    if model == "last_non_direct":
        non_direct = [i for i, t in enumerate(path) if t.channel != DIRECT]
        chosen = non_direct[-1] if non_direct else n - 1
        return [1.0 if i == chosen else 0.0 for i in range(n)]
    if model == "linear":
        return [1.0] * n
    if model == "position_based":
        f, last = config.position_first_weight, config.position_last_weight
        if n == 1:
            return [1.0]
        if n == 2:  # f = l = 0 leaves nothing to split: all-zero weights, i.e. linear
            return [f / (f + last), last / (f + last)] if f + last > 0 else [0.0, 0.0]
        middle = (1 - f - last) / (n - 2)
        return [f if i == 0 else last if i == n - 1 else middle for i in range(n)]
    if model == "time_decay":
        converted = epoch_ms(conversion.converted_at)
        h = config.half_life_days
        return [pow(2.0, -((converted - epoch_ms(t.touch_at)) / 1000) / (h * 86400)) for t in path]
    raise ValueError(f"{model!r} is not a rule-based model")


def _paths(touches: list[Touch], conversions: list[Conversion], config: AttributionConfig) -> tuple[dict, dict]:
    by_user: dict[str, list[Touch]] = defaultdict(list)
    for t in touches:
        by_user[t.user_id].append(t)
    for ts in by_user.values():
        ts.sort(key=lambda t: (t.touch_at, t.touch_id))
    max_lookback = timedelta(days=config.max_lookback_days)
    paths = {}
    for c in conversions:
        user = by_user.get(c.user_id, [])
        lo = bisect_left(user, c.converted_at - max_lookback, key=lambda t: t.touch_at)
        hi = bisect_left(user, c.converted_at, key=lambda t: t.touch_at)
        paths[c.conversion_id] = conversion_path(c, user[lo:hi], config)
    return by_user, paths


def journeys_by_date(
    touches: list[Touch], conversions: list[Conversion], config: AttributionConfig
) -> dict[date, dict[tuple[str, ...], list[int]]]:
    """Per date, channel sequence -> [converting, non-converting] journeys (the spec's "Journeys")."""
    by_user, paths = _paths(touches, conversions, config)
    out: dict[date, dict[tuple[str, ...], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    last_conversion: dict[str, datetime] = {}
    for c in conversions:
        if paths[c.conversion_id]:
            out[c.converted_at.date()][tuple(t.channel for t in paths[c.conversion_id])][0] += 1
        if c.user_id not in last_conversion or c.converted_at > last_conversion[c.user_id]:
            last_conversion[c.user_id] = c.converted_at
    window = config.click_lookback_days * DAY_MS
    for user, ts in by_user.items():
        after = [t for t in ts if user not in last_conversion or t.touch_at > last_conversion[user]]
        if not after:
            continue
        last = epoch_ms(after[-1].touch_at)
        journey = apply_transforms([t for t in after if last - epoch_ms(t.touch_at) <= window], config.path_transforms)
        if journey:
            out[after[-1].touch_at.date()][tuple(t.channel for t in journey)][1] += 1
    return {d: dict(j) for d, j in out.items()}


def _window(journeys: dict[date, dict[tuple[str, ...], list[int]]], day: date, fit_days: int) -> dict:
    merged: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for offset in range(fit_days):
        for path, (conv, null) in journeys.get(day - timedelta(days=offset), {}).items():
            merged[path][0] += conv
            merged[path][1] += null
    return dict(merged)


def daily_fits(
    touches: list[Touch],
    conversions: list[Conversion],
    config: AttributionConfig,
    paths: dict[str, list[Touch]] | None = None,
) -> dict[date, DayFit]:
    """One data-driven fit per conversion date D, on the journeys dated in [D - fit_days + 1, D]."""
    if paths is None:
        paths = _paths(touches, conversions, config)[1]
    journeys = journeys_by_date(touches, conversions, config)
    needed: dict[date, set[frozenset[str]]] = defaultdict(set)
    for c in conversions:
        if paths[c.conversion_id]:
            needed[c.converted_at.date()].add(frozenset(t.channel for t in paths[c.conversion_id]))
    days = {c.converted_at.date() for c in conversions}
    return {d: fit_window(_window(journeys, d, config.fit_days), needed[d], config) for d in sorted(days)}


def attribution_credits(
    touches: list[Touch], conversions: list[Conversion], config: AttributionConfig, models: Iterable[str] = MODELS
) -> list[dict]:
    """marts.attribution_credits: one row per conversion × model × credited touch (or one unattributed row)."""
    models = tuple(models)
    paths = _paths(touches, conversions, config)[1]
    fits = daily_fits(touches, conversions, config, paths) if {"markov", "shapley"} & set(models) else {}
    rows = []
    for c in sorted(conversions, key=lambda c: (c.converted_at, c.conversion_id)):
        path = paths[c.conversion_id]
        base = {
            "conversion_id": c.conversion_id,
            "order_id": c.order_id,
            "user_id": c.user_id,
            "converted_at": c.converted_at,
            "conversion_date": c.converted_at.date(),
        }
        revenue = Decimal(c.revenue_cents).scaleb(-2)
        for model in models:
            if not path:
                rows.append(
                    {
                        **base,
                        "model": model,
                        "touch_index": 0,
                        "touch_count": 0,
                        "touch_id": "",
                        "touch_at": None,
                        "touch_type": "none",
                        "channel": UNATTRIBUTED,
                        "campaign_id": "",
                        "creative_id": "",
                        "asset_id": "",
                        "credit_share": Decimal(SHARE_UNITS).scaleb(-9),
                        "revenue": revenue,
                        "revenue_credit": revenue,
                        "currency": config.reporting_currency,
                    }
                )
                continue
            if model in ("markov", "shapley"):
                weights = touch_weights(model, [t.channel for t in path], fits[c.converted_at.date()])
            else:
                weights = rule_weights(model, path, c, config)
            units = allocate_shares(weights)
            cents = allocate_cents(c.revenue_cents, units)
            for i, (t, u, cent) in enumerate(zip(path, units, cents), start=1):
                if u == 0:
                    continue
                rows.append(
                    {
                        **base,
                        "model": model,
                        "touch_index": i,
                        "touch_count": len(path),
                        "touch_id": t.touch_id,
                        "touch_at": t.touch_at,
                        "touch_type": t.touch_type,
                        "channel": t.channel,
                        "campaign_id": t.campaign_id,
                        "creative_id": t.creative_id,
                        "asset_id": t.asset_id,
                        "credit_share": Decimal(u).scaleb(-9),
                        "revenue": revenue,
                        "revenue_credit": Decimal(cent).scaleb(-2),
                        "currency": config.reporting_currency,
                    }
                )
    return rows
