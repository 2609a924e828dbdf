from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipelines.attribution.config import (
    MODELS,
    SHARE_UNITS,
    UNATTRIBUTED,
    AttributionConfig,
    read_lookback_overrides,
)
from tests.attribution_oracles.cases import edge_case_events
from tests.attribution_oracles.reference import (
    DAY_MS,
    Conversion,
    Touch,
    allocate_cents,
    allocate_shares,
    attribution_credits,
    conversion_path,
    epoch_ms,
    from_events,
    journeys_by_date,
    load_fx_rates,
    rule_weights,
)

pytestmark = pytest.mark.unit

SEEDS = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds"
T0 = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)


def touch(touch_id, before, channel="paid_search", touch_type="click", user="u1"):
    return Touch(touch_id, user, T0 - before, touch_type, channel, f"{channel}-cmp", f"{channel}-cr", "asset")


def conversion(cents=10_000, at=T0, user="u1", cid="conv-1"):
    return Conversion(cid, f"ord-{cid}", user, at, cents)


def path_of(touches, config=AttributionConfig(), conv=None):
    return conversion_path(conv or conversion(), sorted(touches, key=lambda t: (t.touch_at, t.touch_id)), config)


def ids(path):
    return [t.touch_id for t in path]


def shares(model, channels, config=AttributionConfig()):
    path = [touch(f"t{i}", (len(channels) - i) * timedelta(hours=1), ch) for i, ch in enumerate(channels)]
    return allocate_shares(rule_weights(model, path, conversion(), config))


# --- shares and cents ---------------------------------------------------------------------------------------


def test_shares_of_three_linear_touches_and_100_cents():
    units = allocate_shares([1.0, 1.0, 1.0])
    assert units == [333_333_334, 333_333_333, 333_333_333]  # the leftover unit: equal remainders, lowest index
    assert allocate_cents(100, units) == [34, 33, 33]


def test_largest_remainder_not_lowest_index():
    # raw 333333333.33 and 666666666.67: the leftover unit goes to the larger remainder
    assert allocate_shares([1.0, 2.0]) == [333_333_333, 666_666_667]
    # 1 cent over [1/3, 2/3]: remainders 333333333 and 666666667 -> second touch
    assert allocate_cents(1, [333_333_333, 666_666_667]) == [0, 1]
    assert allocate_cents(0, [333_333_333, 666_666_667]) == [0, 0]


def test_all_zero_weights_fall_back_to_linear():
    assert allocate_shares([0.0, 0.0]) == [500_000_000, 500_000_000]
    assert allocate_shares([]) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=40), st.integers(0, 10**12)
)
def test_shares_and_cents_always_sum_exactly(weights, cents):
    units = allocate_shares(weights)
    assert sum(units) == SHARE_UNITS and all(u >= 0 for u in units)
    money = allocate_cents(cents, units)
    assert sum(money) == cents and all(m >= 0 for m in money)
    assert all(m == 0 for m, u in zip(money, units) if u == 0)  # uncredited touches never get a cent


# --- rule models --------------------------------------------------------------------------------------------


def test_first_last_linear():
    assert shares("first_touch", ["a", "b", "c"]) == [SHARE_UNITS, 0, 0]
    assert shares("last_touch", ["a", "b", "c"]) == [0, 0, SHARE_UNITS]
    assert shares("linear", ["a", "b", "c", "d"]) == [250_000_000] * 4


def test_last_non_direct():
    assert shares("last_non_direct", ["a", "b", "direct"]) == [0, SHARE_UNITS, 0]
    assert shares("last_non_direct", ["direct", "a", "direct", "direct"]) == [0, SHARE_UNITS, 0, 0]
    assert shares("last_non_direct", ["direct", "direct"]) == [0, SHARE_UNITS]  # all direct: the last touch


def test_position_based():
    assert shares("position_based", ["a"]) == [SHARE_UNITS]
    assert shares("position_based", ["a", "b"]) == [500_000_000, 500_000_000]
    # n = 2 with f = 0.3, l = 0.5: 0.3/0.8 and 0.5/0.8
    config = AttributionConfig(position_first_weight=0.3, position_last_weight=0.5)
    assert shares("position_based", ["a", "b"], config) == [375_000_000, 625_000_000]
    assert shares("position_based", ["a", "b", "c"]) == [400_000_000, 200_000_000, 400_000_000]
    # n = 5: 0.2 / 3 each in the middle = 66666666.67 -> two leftover units to the first two middles
    assert shares("position_based", list("abcde")) == [400_000_000, 66_666_667, 66_666_667, 66_666_666, 400_000_000]
    # f = l = 0 would leave two-touch paths nothing to split: the configuration refuses it.
    with pytest.raises(ValueError, match="first \\+ last"):
        AttributionConfig(position_first_weight=0.0, position_last_weight=0.0)


def test_time_decay_half_life():
    path = [touch("old", 14 * DAY), touch("mid", 7 * DAY), touch("new", 1 * MS)]
    weights = rule_weights("time_decay", path, conversion(), AttributionConfig())
    assert weights[:2] == [0.25, 0.5]
    assert weights[2] == pytest.approx(1.0)
    # 0.25 : 0.5 with a 1-day half-life and the touches 2 and 1 days out
    path = [touch("a", 2 * DAY), touch("b", 1 * DAY)]
    config = AttributionConfig(half_life_days=1)
    assert allocate_shares(rule_weights("time_decay", path, conversion(), config)) == [333_333_333, 666_666_667]


# --- eligibility and order ----------------------------------------------------------------------------------


def test_click_window_is_inclusive_to_the_millisecond():
    touches = [touch("at-30d", 30 * DAY), touch("beyond", 30 * DAY + MS), touch("same-ms", timedelta(0))]
    assert ids(path_of(touches)) == ["at-30d"]


def test_impression_window_is_one_day_click_window_thirty():
    touches = [
        touch("imp-1d", DAY, touch_type="impression"),
        touch("imp-beyond", DAY + MS, touch_type="impression"),
        touch("imp-2d", 2 * DAY, touch_type="impression"),
        touch("click-2d", 2 * DAY),
    ]
    assert ids(path_of(touches)) == ["click-2d", "imp-1d"]


def test_per_channel_override():
    config = AttributionConfig(lookback_overrides=read_lookback_overrides(SEEDS / "attribution_lookback_windows.csv"))
    touches = [
        touch("email-14d", 14 * DAY, "email"),
        touch("email-beyond", 14 * DAY + MS, "email"),
        touch("affiliate-7d", 7 * DAY, "affiliate"),
        touch("affiliate-beyond", 7 * DAY + MS, "affiliate"),
        touch("video-imp-3d", 3 * DAY, "video", "impression"),
        touch("video-imp-beyond", 3 * DAY + MS, "video", "impression"),
        touch("email-imp-1d", DAY, "email", "impression"),
        touch("email-imp-2d", 2 * DAY, "email", "impression"),  # impressions of email keep the default 1 day
        touch("search-20d", 20 * DAY, "paid_search"),
    ]
    assert ids(path_of(touches, config)) == ["search-20d", "email-14d", "affiliate-7d", "video-imp-3d", "email-imp-1d"]
    # without the seed every click looks back 30 days and every impression 1 day
    assert ids(path_of(touches)) == [
        "search-20d",
        "email-beyond",
        "email-14d",
        "affiliate-beyond",
        "affiliate-7d",
        "email-imp-1d",
    ]


def test_other_users_and_later_touches_are_not_eligible():
    touches = [touch("mine", DAY), touch("theirs", DAY, user="u2"), touch("after", -MS)]
    assert ids(path_of(touches)) == ["mine"]


def test_timestamp_ties_order_by_touch_id():
    touches = [touch("b", DAY, "x"), touch("a", DAY, "y"), touch("c", 2 * DAY, "z")]
    path = path_of(touches)
    assert ids(path) == ["c", "a", "b"]
    assert shares("first_touch", [t.channel for t in path]) == [SHARE_UNITS, 0, 0]


# --- path transforms ----------------------------------------------------------------------------------------

CHANNELS = ["direct", "a", "a", "b", "a", "direct", "direct"]


def transformed(channels, *transforms):
    touches = [touch(f"t{i}", (len(channels) - i) * timedelta(hours=1), ch) for i, ch in enumerate(channels)]
    return [t.channel for t in path_of(touches, AttributionConfig(path_transforms=transforms))]


@pytest.mark.parametrize(
    "transforms, expected",
    [
        ((), CHANNELS),
        (("collapse_repeats",), ["direct", "a", "b", "a", "direct"]),
        (("first_occurrence",), ["direct", "a", "b"]),
        (("drop_direct",), ["a", "a", "b", "a"]),
        (("drop_trailing_direct",), ["direct", "a", "a", "b", "a"]),
        (("drop_direct", "collapse_repeats"), ["a", "b", "a"]),
        (("drop_trailing_direct", "first_occurrence"), ["direct", "a", "b"]),
        (("collapse_repeats", "drop_trailing_direct", "first_occurrence"), ["direct", "a", "b"]),
    ],
)
def test_transforms(transforms, expected):
    assert transformed(CHANNELS, *transforms) == expected


def test_transforms_apply_in_the_order_given():
    assert transformed(["a", "direct", "a"], "collapse_repeats", "drop_direct") == ["a", "a"]
    assert transformed(["a", "direct", "a"], "drop_direct", "collapse_repeats") == ["a"]


def test_all_direct_paths_survive_direct_transforms():
    assert transformed(["direct", "direct"], "drop_direct") == ["direct", "direct"]
    assert transformed(["direct", "direct"], "drop_trailing_direct") == ["direct", "direct"]
    assert transformed(["direct", "direct"], "collapse_repeats", "drop_direct") == ["direct"]


# --- events, money and the output rows ----------------------------------------------------------------------


def event(event_id, kind, at, **extra):
    return {
        "event_id": event_id,
        "event_type": kind,
        "occurred_at": at,
        "user_id": "u1",
        "channel": "email",
        "campaign_id": "c",
        "creative_id": "cr",
        "asset_id": "as",
        **extra,
    }


def test_from_events_dedups_and_converts_revenue():
    fx = load_fx_rates(SEEDS / "fx_rates.csv")
    assert fx[("EUR", date(2026, 10, 1))] == Decimal("1.1653000000")
    touches, conversions = from_events(
        [
            event("t1", "click", "2026-10-31T10:00:00.000Z"),
            event("t1", "click", "2026-10-31T10:00:00.000Z"),
            event("c1", "conversion", "2026-10-31T23:59:59.999Z", order_id="o1", revenue="10.00", currency="EUR"),
            event("c2", "conversion", "2026-11-01T00:00:00.000Z", order_id="o2", revenue="10.00", currency="EUR"),
            event("c3", "conversion", "2026-11-01T00:00:00.000Z", order_id="o3", revenue="0.125", currency="USD"),
            event("c4", "conversion", "2026-11-01T00:00:00.000Z", order_id="o4", revenue="0.135", currency="USD"),
            event("c5", "conversion", "2026-11-01T00:00:00.000Z", order_id="o5", revenue="5.00", currency="JPY"),
            event("c6", "conversion", "2026-11-01T00:00:00.000Z", order_id="o6", currency="USD"),
        ],
        fx,
    )
    assert [t.touch_id for t in touches] == ["t1"]
    assert touches[0].touch_at == datetime(2026, 10, 31, 10, tzinfo=UTC)
    # 10 × 1.1653 = 11.653 (October), 10 × 1.1590 = 11.59 (November); half-to-even 0.125 -> 0.12, 0.135 -> 0.14
    assert [c.revenue_cents for c in conversions] == [1165, 1159, 12, 14, 0, 0]


def test_unattributed_conversion_keeps_all_revenue_in_every_model():
    rows = attribution_credits([touch("late", -MS)], [conversion(cents=1234)], AttributionConfig())
    assert len(rows) == len(MODELS)
    for row in rows:
        assert row["channel"] == UNATTRIBUTED and row["touch_index"] == 0 and row["touch_count"] == 0
        assert row["touch_id"] == "" and row["touch_type"] == "none" and row["touch_at"] is None
        assert row["campaign_id"] == row["creative_id"] == row["asset_id"] == ""
        assert row["credit_share"] == Decimal("1.000000000")
        assert row["revenue"] == row["revenue_credit"] == Decimal("12.34")


def test_credit_rows():
    touches = [touch("t1", 3 * DAY, "a"), touch("t2", 2 * DAY, "direct"), touch("t3", DAY, "b")]
    rows = attribution_credits(touches, [conversion(cents=100)], AttributionConfig(), ["linear", "first_touch"])
    assert [(r["model"], r["touch_index"], r["channel"], r["revenue_credit"]) for r in rows] == [
        ("linear", 1, "a", Decimal("0.34")),
        ("linear", 2, "direct", Decimal("0.33")),
        ("linear", 3, "b", Decimal("0.33")),
        ("first_touch", 1, "a", Decimal("1.00")),
    ]
    row = rows[0]
    assert set(row) == {
        "conversion_id",
        "order_id",
        "user_id",
        "converted_at",
        "conversion_date",
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
        "currency",
    }
    assert row["credit_share"] == Decimal("0.333333334") and row["touch_count"] == 3
    assert row["conversion_date"] == date(2026, 11, 15) and row["currency"] == "USD"
    assert row["revenue"] == Decimal("1.00") and row["touch_at"] == T0 - 3 * DAY


# --- journeys and data-driven models ------------------------------------------------------------------------


def test_journeys_by_date():
    touches = [
        touch("a", 40 * DAY, "old"),  # outside the conversion's 30-day click window
        touch("b", DAY, "x"),
        touch("c", -DAY, "y"),  # after u1's last conversion: u1's non-converting journey
        touch("d", -2 * DAY, "z"),
        touch("e", -2 * DAY, "other", user="u2"),  # u2 never converts: all its touches
        touch("f", 45 * DAY, "too-early", user="u3"),  # 35 days before u3's last touch: left out
        touch("g", 10 * DAY, "late", user="u3"),
    ]
    assert journeys_by_date(touches, [conversion()], AttributionConfig()) == {
        date(2026, 11, 15): {("x",): [1, 0]},
        date(2026, 11, 17): {("y", "z"): [0, 1], ("other",): [0, 1]},
        date(2026, 11, 5): {("late",): [0, 1]},
    }


def analyzecore_dataset(day_offset=timedelta(0)):
    """The analyzecore journeys (see test_attribution_datadriven) as events: C1>C2>C3 converts, C1 and C2>C3 don't."""
    touches = [
        touch("1a", 3 * DAY, "C1", user="u1"),
        touch("1b", 2 * DAY, "C2", user="u1"),
        touch("1c", DAY, "C3", user="u1"),
        touch("2a", 2 * DAY - day_offset, "C1", user="u2"),
        touch("3a", 2 * DAY - day_offset, "C2", user="u3"),
        touch("3b", -day_offset, "C3", user="u3"),
    ]
    return touches, [conversion(cents=1000, user="u1")]


def test_markov_and_shapley_credits_end_to_end():
    touches, conversions = analyzecore_dataset(day_offset=timedelta(hours=1))
    rows = attribution_credits(touches, conversions, AttributionConfig(), ["markov", "shapley"])
    markov = [r["credit_share"] for r in rows if r["model"] == "markov"]
    assert markov == [Decimal("0.2"), Decimal("0.4"), Decimal("0.4")]  # RE 0.5, 1, 1
    shapley = [r["credit_share"] for r in rows if r["model"] == "shapley"]
    assert shapley == [Decimal("0.333333334"), Decimal("0.333333333"), Decimal("0.333333333")]
    assert [r["revenue_credit"] for r in rows if r["model"] == "markov"] == [Decimal("2"), Decimal("4"), Decimal("4")]


def test_fit_window_limits_the_journeys():
    # the non-converting journeys end 1 and 3 days after the conversion, outside its window:
    # only C1>C2>C3 converting is fitted and every removal effect is 1 -> shares 1/3 each
    touches, conversions = analyzecore_dataset(day_offset=3 * DAY)
    rows = attribution_credits(touches, conversions, AttributionConfig(), ["markov"])
    assert [r["credit_share"] for r in rows] == [Decimal("0.333333334"), Decimal("0.333333333"), Decimal("0.333333333")]
    # fit_days = 0 fits nothing: all weights 0 -> linear
    rows = attribution_credits(touches, conversions, AttributionConfig(fit_days=0), ["markov", "shapley"])
    assert all(r["credit_share"] in (Decimal("0.333333334"), Decimal("0.333333333")) for r in rows)


# --- the edge-case dataset ----------------------------------------------------------------------------------


def test_edge_case_dataset_contains_every_case():
    events = edge_case_events()
    assert events == edge_case_events()  # deterministic
    assert {e["event_type"] for e in events} == {"impression", "click", "conversion"}
    assert all(date(2026, 10, 1) <= date.fromisoformat(e["occurred_at"][:10]) <= date(2026, 11, 30) for e in events)
    fx = load_fx_rates(SEEDS / "fx_rates.csv")
    config = AttributionConfig(lookback_overrides=read_lookback_overrides(SEEDS / "attribution_lookback_windows.csv"))
    touches, conversions = from_events(events, fx)
    found: Counter[str] = Counter()
    found["duplicate deliveries"] = len(events) - len({e["event_id"] for e in events})

    by_user = defaultdict(list)
    for t in touches:
        by_user[t.user_id].append(t)
    per_user = Counter(c.user_id for c in conversions)
    found["users with several conversions"] = sum(1 for n in per_user.values() if n > 1)
    boundaries = {
        ("default", "click", 30),
        ("default", "impression", 1),
        ("email", "click", 14),
        ("affiliate", "click", 7),
        ("video", "impression", 3),
    }
    for c in conversions:
        user = sorted(by_user[c.user_id], key=lambda t: (t.touch_at, t.touch_id))
        path = conversion_path(c, user, config)
        channels = [t.channel for t in path]
        in_path = {t.touch_id for t in path}
        for t in user:
            gap = epoch_ms(c.converted_at) - epoch_ms(t.touch_at)
            days = config.lookback_days(t.channel, t.touch_type)
            key = (
                t.channel if (t.channel, t.touch_type) in config.lookback_overrides else "default",
                t.touch_type,
                days,
            )
            if gap == 0:
                found["touch at the conversion's millisecond"] += 1
                assert t.touch_id not in in_path
            if gap == days * DAY_MS and key in boundaries:
                found[f"at {key}"] += 1
                assert t.touch_id in in_path
            if gap == days * DAY_MS + 1 and key in boundaries:
                found[f"1 ms beyond {key}"] += 1
                assert t.touch_id not in in_path
        if len({t.touch_at for t in path}) < len(path):
            found["same-millisecond touches in a path"] += 1
        found["empty path"] += not path
        found["single-touch path"] += len(path) == 1
        found["all-direct path"] += len(path) > 1 and set(channels) == {"direct"}
        found["consecutive repeats"] += any(a == b for a, b in zip(channels, channels[1:]))
        found["non-consecutive repeats"] += any(
            channels[i] == channels[j] != channels[i + 1]
            for i in range(len(channels))
            for j in range(i + 2, len(channels))
        )
        found["path spans two months"] += bool(path) and path[0].touch_at.month != c.converted_at.month
        found[f"{c.converted_at:%Y-%m} conversion"] += 1
    boundary_months = {
        c.converted_at.month for c in conversions if abs(c.converted_at - datetime(2026, 11, 1, tzinfo=UTC)) <= MS
    }
    assert boundary_months == {10, 11}
    missing = [
        case
        for case in [
            "duplicate deliveries",
            "users with several conversions",
            "touch at the conversion's millisecond",
            *[f"{where} {key}" for key in boundaries for where in ("at", "1 ms beyond")],
            "same-millisecond touches in a path",
            "empty path",
            "single-touch path",
            "all-direct path",
            "consecutive repeats",
            "non-consecutive repeats",
            "path spans two months",
            "2026-10 conversion",
            "2026-11 conversion",
        ]
        if found[case] == 0
    ]
    assert not missing, f"edge cases not in the dataset: {missing}"

    journeys = journeys_by_date(touches, conversions, config)
    assert any(null for day in journeys.values() for _, null in day.values())
    rows = attribution_credits(touches, conversions, config)
    totals = defaultdict(lambda: [Decimal(0), Decimal(0), None])
    for r in rows:
        total = totals[(r["conversion_id"], r["model"])]
        total[0] += r["credit_share"]
        total[1] += r["revenue_credit"]
        total[2] = r["revenue"]
    assert len(totals) == len(conversions) * len(MODELS)
    assert all(share == 1 and money == revenue for share, money, revenue in totals.values())
