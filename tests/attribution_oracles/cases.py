"""A deterministic edge-case dataset of canonical events, to hold every attribution engine to the spec's corners.

Each synthetic user plays one scenario (ties to the millisecond, lookback boundaries and 1 ms beyond, per-channel
windows, repeats, all-direct paths, conversions without touches, duplicate deliveries, FX month changes), so
that a small dataset exercises what realistic data hits only by chance. Dates stay in October–November 2026,
which the fx_rates seed covers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mm_pipelines.events.event_schema import SCHEMA_VERSION
from mm_pipelines.events.generator import CHANNELS, Catalog, build_catalog

PAID = tuple(c.name for c in CHANNELS if c.paid)
# channels without a per-channel window in seeds/attribution_lookback_windows.csv for that touch type
DEFAULT_CLICK = ("paid_search", "paid_social", "display", "video", "organic_search")
DEFAULT_IMPRESSION = ("paid_search", "paid_social", "email", "affiliate")
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class _User:
    """Emits one user's events; ids and amounts come from the shared seeded generator."""

    def __init__(self, rng: random.Random, catalog: Catalog, user_id: str):
        self.rng, self.catalog, self.user_id = rng, catalog, user_id
        self.events: list[dict] = []

    def when(self) -> datetime:
        """A conversion time late enough that 30 days and 1 ms before it is still in October, and in the past."""
        start = datetime(2026, 11, 2, tzinfo=UTC)
        return start + timedelta(seconds=self.rng.randrange(18 * 86400), milliseconds=self.rng.randrange(1000))

    def touch(self, kind: str, at: datetime, channel: str) -> dict:
        campaign = self.rng.choice(self.catalog.campaigns[channel])
        creative = self.rng.choice(self.catalog.creatives[campaign])
        event = {
            "event_id": f"{self.rng.getrandbits(128):032x}",
            "event_type": kind,
            "occurred_at": _ts(at),
            "user_id": self.user_id,
            "channel": channel,
            "campaign_id": campaign,
            "creative_id": creative,
            "asset_id": self.catalog.assets.get(creative, ""),
            "schema_version": SCHEMA_VERSION,
        }
        self.events.append(event)
        return event

    def click(self, at: datetime, channel: str) -> dict:
        return self.touch("click", at, channel)

    def impression(self, at: datetime, channel: str) -> dict:
        return self.touch("impression", at, channel)

    def convert(self, at: datetime, currency: str | None = None) -> dict:
        sku, price = self.rng.choice(self.catalog.skus)
        # like generator.py: the conversion carries the user's last click before it, else direct
        clicks = [e for e in self.events if e["event_type"] == "click" and e["occurred_at"] < _ts(at)]
        last = max(clicks, key=lambda e: e["occurred_at"], default=None)
        revenue = price * self.rng.choice((1, 1, 2, 3)) + Decimal(self.rng.choice(("0", "0.005", "0.015")))
        event = {
            "event_id": f"{self.rng.getrandbits(128):032x}",
            "event_type": "conversion",
            "occurred_at": _ts(at),
            "user_id": self.user_id,
            "channel": last["channel"] if last else "direct",
            "campaign_id": last["campaign_id"] if last else "direct-none",
            "creative_id": last["creative_id"] if last else "none",
            "asset_id": last["asset_id"] if last else "",
            "order_id": f"ord-{self.rng.getrandbits(48):012x}",
            "revenue": str(revenue),
            "currency": currency or self.rng.choice(("USD", "USD", "EUR", "GBP")),
            "sku": sku,
            "schema_version": SCHEMA_VERSION,
        }
        self.events.append(event)
        return event

    def channel(self, pool: tuple[str, ...] = PAID) -> str:
        return self.rng.choice(pool)

    def before(self, at: datetime, max_hours: int = 20) -> datetime:
        return at - timedelta(seconds=self.rng.randrange(60, max_hours * 3600), milliseconds=self.rng.randrange(1000))


def _same_ms_touches(u: _User) -> None:
    c = u.when()
    t = u.before(c)
    u.click(t, u.channel())
    u.click(t, u.channel())
    u.convert(c)


def _touch_at_conversion_ms(u: _User) -> None:
    c = u.when()
    u.click(u.before(c), u.channel())
    u.click(c, u.channel())
    u.convert(c)


def _boundary(kind: str, pool: tuple[str, ...], days: int) -> Callable[[_User], None]:
    def scenario(u: _User) -> None:
        c = u.when()
        channel = u.channel(pool)
        u.touch(kind, c - days * DAY, channel)
        u.touch(kind, c - days * DAY - MS, u.channel(pool))
        if u.rng.random() < 0.5:
            u.click(u.before(c), u.channel())
        u.convert(c)

    scenario.__name__ = f"_{pool[0]}_{kind}_{days}d_boundary"
    return scenario


def _single_touch(u: _User) -> None:
    c = u.when()
    u.touch(u.rng.choice(("click", "impression")), u.before(c), u.channel())
    u.convert(c)


def _all_direct(u: _User) -> None:
    c = u.when()
    for _ in range(u.rng.randint(2, 3)):
        u.click(u.before(c, 200), "direct")
    u.convert(c)


def _consecutive_repeats(u: _User) -> None:
    c = u.when()
    a, b = u.rng.sample(PAID, 2)
    times = sorted(u.before(c, 100) for _ in range(4))
    for t, ch in zip(times, (a, a, b, "direct")):
        u.click(t, ch)
    u.convert(c)


def _non_consecutive_repeats(u: _User) -> None:
    c = u.when()
    a, b = u.rng.sample(PAID, 2)
    times = sorted(u.before(c, 100) for _ in range(5))
    for t, ch in zip(times, ("direct", a, b, a, "direct")):
        u.click(t, ch)
    u.convert(c)


def _no_touch_conversion(u: _User) -> None:
    c = u.when()
    u.convert(c)
    if u.rng.random() < 0.5:  # touches only after it: a non-converting journey
        u.click(c + timedelta(hours=u.rng.randint(1, 48)), u.channel())


def _several_conversions(u: _User) -> None:
    c1 = u.when() - 3 * DAY
    c2 = c1 + timedelta(hours=u.rng.randint(2, 60))
    u.click(u.before(c1), u.channel())
    u.impression(u.before(c1, 10), u.channel())
    u.convert(c1)
    u.click(c1 + (c2 - c1) / 2, u.channel())
    u.convert(c2)
    u.click(c2 + timedelta(hours=u.rng.randint(1, 24)), u.channel())


def _duplicate_deliveries(u: _User) -> None:
    c = u.when()
    first = u.click(u.before(c), u.channel())
    u.click(u.before(c), u.channel())
    conversion = u.convert(c)
    u.events += [dict(first), dict(conversion)]


def _month_boundary(u: _User) -> None:
    c = datetime(2026, 11, 1, tzinfo=UTC) - (MS if u.rng.random() < 0.5 else timedelta(0))
    u.click(c - timedelta(days=u.rng.randint(1, 20)), u.channel())
    u.impression(u.before(c, 12), u.channel(DEFAULT_IMPRESSION))
    u.convert(c, u.rng.choice(("EUR", "GBP")))


def _non_converting(u: _User) -> None:
    last = u.when()
    for _ in range(u.rng.randint(1, 4)):
        u.touch(u.rng.choice(("click", "impression")), u.before(last, 300), u.channel())


SCENARIOS: tuple[Callable[[_User], None], ...] = (
    _same_ms_touches,
    _touch_at_conversion_ms,
    _boundary("click", DEFAULT_CLICK, 30),
    _boundary("impression", DEFAULT_IMPRESSION, 1),
    _boundary("click", ("email",), 14),
    _boundary("click", ("affiliate",), 7),
    _boundary("impression", ("video",), 3),
    _single_touch,
    _all_direct,
    _consecutive_repeats,
    _non_consecutive_repeats,
    _no_touch_conversion,
    _several_conversions,
    _duplicate_deliveries,
    _month_boundary,
    _non_converting,
    _non_converting,
)


def edge_case_events(seed: int = 11, users: int = 400) -> list[dict]:
    """Canonical events of `users` users, each playing one scenario in turn, sorted by (occurred_at, event_id)."""
    rng = random.Random(seed)
    catalog = build_catalog(random.Random(seed))
    out: list[dict] = []
    for n in range(users):
        user = _User(rng, catalog, f"edge-{seed:x}-{n:05d}")
        SCENARIOS[n % len(SCENARIOS)](user)
        out += user.events
    out.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return out
