"""A realistic, deterministic synthetic dataset of canonical events.

Users see impressions across channels, click some, and some convert with revenue in a few
currencies; conversions carry the channel and campaign of the user's last click (or `direct`).
The same seed and size always give the same bytes, so demos and tests are reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from mm_pipelines.events.event_schema import SCHEMA_VERSION


@dataclass(frozen=True)
class Channel:
    name: str
    paid: bool
    impressions_per_user: float  # mean impressions per user over the period
    ctr: float  # clicks per impression (visits per user for unpaid channels)


CHANNELS = (
    Channel("paid_search", True, 3.0, 0.12),
    Channel("paid_social", True, 6.0, 0.025),
    Channel("display", True, 8.0, 0.008),
    Channel("video", True, 4.0, 0.015),
    Channel("email", True, 2.0, 0.08),
    Channel("affiliate", True, 1.5, 0.04),
    Channel("organic_search", False, 0.0, 0.35),
    Channel("direct", False, 0.0, 0.25),
)
CURRENCIES = (("USD", 0.80), ("EUR", 0.12), ("GBP", 0.08))
CONVERSION_RATE_AFTER_CLICK = 0.10
CLICK_LOOKBACK = timedelta(days=30)


@dataclass(frozen=True)
class Catalog:
    """Campaigns, creatives and media assets per channel, derived from the seed."""

    campaigns: dict[str, list[str]]
    creatives: dict[str, list[str]]  # campaign -> creatives
    assets: dict[str, str]  # creative -> media asset
    skus: list[tuple[str, Decimal]]  # (sku, list price)


def build_catalog(rng: random.Random) -> Catalog:
    campaigns: dict[str, list[str]] = {}
    creatives: dict[str, list[str]] = {}
    assets: dict[str, str] = {}
    asset_pool = [f"asset-{i:04d}" for i in range(60)]
    for ch in CHANNELS:
        if not ch.paid:
            campaigns[ch.name] = [f"{ch.name}-none"]
            creatives[f"{ch.name}-none"] = ["none"]
            continue
        campaigns[ch.name] = [f"{ch.name}-cmp-{i:02d}" for i in range(rng.randint(3, 5))]
        for cmp in campaigns[ch.name]:
            creatives[cmp] = [f"{cmp}-cr-{j}" for j in range(rng.randint(2, 4))]
            for cr in creatives[cmp]:
                assets[cr] = rng.choice(asset_pool)
    skus = [(f"sku-{i:03d}", Decimal(rng.randrange(499, 19999)) / 100) for i in range(40)]
    return Catalog(campaigns, creatives, assets, skus)


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: small means only, which is all we use.
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def generate_events(
    events: int = 100_000,
    seed: int = 7,
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC),
    days: int = 28,
) -> list[dict]:
    """About `events` canonical events (whole user journeys, so the count is approximate), by time."""
    rng = random.Random(seed)
    catalog = build_catalog(rng)
    span_s = days * 86400
    out: list[dict] = []
    user_n = 0
    while len(out) < events:
        user_n += 1
        user = f"u-{seed:x}-{user_n:08d}"
        touches: list[tuple[datetime, str, str, str]] = []  # clicks: (time, channel, campaign, creative)
        for ch in CHANNELS:
            if ch.paid:
                for _ in range(_poisson(rng, ch.impressions_per_user)):
                    cmp = rng.choice(catalog.campaigns[ch.name])
                    cr = rng.choice(catalog.creatives[cmp])
                    t = start + timedelta(seconds=rng.randrange(span_s), milliseconds=rng.randrange(1000))
                    out.append(_touch("impression", t, user, ch.name, cmp, cr, catalog, rng))
                    if rng.random() < ch.ctr:
                        click_t = t + timedelta(seconds=rng.randrange(1, 600))
                        out.append(_touch("click", click_t, user, ch.name, cmp, cr, catalog, rng))
                        touches.append((click_t, ch.name, cmp, cr))
            elif rng.random() < ch.ctr:
                cmp = catalog.campaigns[ch.name][0]
                t = start + timedelta(seconds=rng.randrange(span_s), milliseconds=rng.randrange(1000))
                out.append(_touch("click", t, user, ch.name, cmp, "none", catalog, rng))
                touches.append((t, ch.name, cmp, "none"))
        for click_t, *_ in sorted(touches):
            if rng.random() < CONVERSION_RATE_AFTER_CLICK:
                conv_t = click_t + timedelta(seconds=rng.randrange(60, 3 * 86400))
                if conv_t >= start + timedelta(seconds=span_s):
                    continue
                out.append(_conversion(conv_t, user, touches, catalog, rng))
    out.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return out


def _event_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _touch(kind, t, user, channel, campaign, creative, catalog, rng) -> dict:
    return {
        "event_id": _event_id(rng),
        "event_type": kind,
        "occurred_at": _ts(t),
        "user_id": user,
        "channel": channel,
        "campaign_id": campaign,
        "creative_id": creative,
        "asset_id": catalog.assets.get(creative, ""),
        "schema_version": SCHEMA_VERSION,
    }


def _conversion(t, user, touches, catalog, rng) -> dict:
    prior = [c for c in touches if t - CLICK_LOOKBACK <= c[0] < t]
    _, channel, campaign, creative = max(prior) if prior else (t, "direct", "direct-none", "none")
    sku, price = rng.choice(catalog.skus)
    quantity = rng.choice((1, 1, 1, 2, 3))
    r, acc = rng.random(), 0.0
    currency = CURRENCIES[-1][0]  # should the shares' float sum fall just short of r
    for code, share in CURRENCIES:
        acc += share
        if r <= acc:
            currency = code
            break
    revenue = (price * quantity).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return {
        "event_id": _event_id(rng),
        "event_type": "conversion",
        "occurred_at": _ts(t),
        "user_id": user,
        "channel": channel,
        "campaign_id": campaign,
        "creative_id": creative,
        "asset_id": catalog.assets.get(creative, ""),
        "order_id": f"ord-{rng.getrandbits(48):012x}",
        "revenue": str(revenue),  # a string: money never passes through a float
        "currency": currency,
        "sku": sku,
        "schema_version": SCHEMA_VERSION,
    }


def as_live(events: list[dict], now: datetime, rng: random.Random) -> list[dict]:
    """The events as a live stream sends them at `now`: conversions now, each touch 1 s to an hour before."""
    return [
        {
            **e,
            "occurred_at": _ts(
                now - (timedelta(0) if e["event_type"] == "conversion" else timedelta(seconds=rng.randrange(1, 3600)))
            ),
        }
        for e in events
    ]


def to_jsonl(events: list[dict]) -> Iterator[bytes]:
    for e in events:
        yield json.dumps(e, separators=(",", ":")).encode() + b"\n"
