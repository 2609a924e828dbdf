"""The Spark backfill against hand-computed credits and the Python reference (docs/attribution.md).

Runs Spark in local mode on a Parquet archive built in a temp dir: no service needed.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipelines.attribution.config import RULE_MODELS, AttributionConfig, read_lookback_overrides
from mm_pipelines.attribution.spark_backfill import (
    read_archive,
    read_fx_rates,
    rule_based_credits,
    run_backfill,
    spark_session,
)
from tests.attribution_oracles import reference
from tests.attribution_oracles.cases import edge_case_events

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds"
FX_CSV = SEEDS / "fx_rates.csv"
UTC = UTC
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
C = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)  # the usual conversion time
FIRST, LAST = date(2026, 10, 1), date(2026, 11, 1)
CONFIG = AttributionConfig(lookback_overrides={("email", "click"): 14})

ARCHIVE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", pa.timestamp("ms", "UTC")),
        ("user_id", pa.string()),
        ("channel", pa.string()),
        ("campaign_id", pa.string()),
        ("creative_id", pa.string()),
        ("asset_id", pa.string()),
        ("order_id", pa.string()),
        ("revenue", pa.decimal128(38, 10)),
        ("currency", pa.string()),
        ("sku", pa.string()),
        ("schema_version", pa.uint16()),
        ("extra", pa.map_(pa.string(), pa.string())),
        ("topic", pa.string()),
        ("partition", pa.uint32()),
        ("offset", pa.uint64()),
        ("ingested_at", pa.timestamp("ms", "UTC")),
    ]
)


def touch(event_id: str, user: str, at: datetime, channel: str, kind: str = "click") -> dict:
    return {
        "event_id": event_id,
        "event_type": kind,
        "occurred_at": at,
        "user_id": user,
        "channel": channel,
        "campaign_id": f"{channel}-cmp",
        "creative_id": f"{channel}-cr",
        "asset_id": f"{channel}-as",
    }


def conversion(
    event_id: str, user: str, at: datetime = C, revenue: str | None = "100.00", currency: str | None = "USD"
) -> dict:
    return {
        "event_id": event_id,
        "event_type": "conversion",
        "occurred_at": at,
        "user_id": user,
        "channel": "direct",
        "campaign_id": "direct-none",
        "creative_id": "none",
        "asset_id": "",
        "order_id": f"o-{event_id}",
        "revenue": None if revenue is None else Decimal(revenue),
        "currency": currency,
    }


def write_archive(root: Path, events: list[dict]) -> Path:
    """The events as the archiver writes them: one Parquet file per event date; list order is delivery order."""
    rows = [
        {
            "order_id": None,
            "revenue": None,
            "currency": None,
            "sku": None,
            "schema_version": 1,
            "extra": [],
            "topic": "events",
            "partition": 0,
            "offset": i,
            "ingested_at": datetime(2026, 12, 1, tzinfo=UTC) + i * MS,
            **e,
        }
        for i, e in enumerate(events)
    ]
    for day in {r["occurred_at"].date() for r in rows}:
        folder = root / "raw" / "events" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([r for r in rows if r["occurred_at"].date() == day], ARCHIVE_SCHEMA)
        pq.write_table(table, folder / "events-p0-0-1.parquet")
    return root


def credits(
    spark, root: Path, config: AttributionConfig = CONFIG, first: date = FIRST, last: date = LAST
) -> list[dict]:
    events = read_archive(spark, str(root), first, last, config.max_lookback_days)
    df = rule_based_credits(spark, events, read_fx_rates(spark, FX_CSV), config, first, last)
    return sorted(df.toArrow().to_pylist(), key=lambda r: (r["conversion_id"], r["model"], r["touch_index"]))


def of(rows: list[dict], conversion_id: str, model: str) -> list[dict]:
    return [r for r in rows if r["conversion_id"] == conversion_id and r["model"] == model]


def summary(rows: list[dict], conversion_id: str, model: str) -> list[tuple]:
    return [(r["touch_id"], str(r["credit_share"]), str(r["revenue_credit"])) for r in of(rows, conversion_id, model)]


def spec_units(weights: list[float]) -> list[int]:
    """The spec's share allocation, written out independently of every engine."""
    total = 0.0
    for w in weights:
        total += w
    raw = [w / total * 1e9 for w in weights]
    units = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - units[i]), i))
    for i in order[: 10**9 - sum(units)]:
        units[i] += 1
    return units


def hand_made_events() -> list[dict]:
    events = [
        # a mixed path, and a path of direct touches only
        touch("p1", "u-path", C - 3 * DAY, "email"),
        touch("p2", "u-path", C - 2 * DAY, "direct"),
        touch("p3", "u-path", C - 20 * HOUR, "paid_search", "impression"),
        touch("p4", "u-path", C - HOUR, "direct"),
        conversion("c-path", "u-path"),
        touch("ad1", "u-alldirect", C - 2 * HOUR, "direct"),
        touch("ad2", "u-alldirect", C - HOUR, "direct", "impression"),
        conversion("c-alldirect", "u-alldirect"),
        # linear over 3 touches and 1.00
        *(touch(f"l{i}", "u-linear", C - i * HOUR, ch) for i, ch in ((3, "email"), (2, "display"), (1, "video"))),
        conversion("c-linear", "u-linear", revenue="1.00"),
        # time decay: 14 and 7 days (weights 1/4, 1/2); 7 days and 1 ms
        touch("d1", "u-decay", C - 14 * DAY, "display"),
        touch("d2", "u-decay", C - 7 * DAY, "video"),
        conversion("c-decay", "u-decay"),
        touch("e1", "u-decay2", C - 7 * DAY, "display"),
        touch("e2", "u-decay2", C - MS, "video"),
        conversion("c-decay2", "u-decay2", revenue="10.01"),
        # windows: click 30 days (in) and 30 days + 1 ms (out); impression 1 day (in) and + 1 ms (out); same ms (out)
        touch("w1", "u-win-click", C - 30 * DAY, "paid_search"),
        touch("w2", "u-win-click", C - 30 * DAY - MS, "display"),
        conversion("c-win-click", "u-win-click"),
        touch("w3", "u-win-imp", C - DAY, "display", "impression"),
        touch("w4", "u-win-imp", C - DAY - MS, "video", "impression"),
        touch("w5", "u-win-imp", C, "paid_search"),
        conversion("c-win-imp", "u-win-imp"),
        # a per-channel window: email clicks look back 14 days
        touch("w6", "u-win-email", C - 14 * DAY, "email"),
        touch("w7", "u-win-email", C - 14 * DAY - MS, "email"),
        conversion("c-win-email", "u-win-email"),
        # same millisecond: ordered by touch_id
        touch("tie-b", "u-tie", C - HOUR, "email"),
        touch("tie-a", "u-tie", C - HOUR, "display"),
        conversion("c-tie", "u-tie"),
        # unattributed: no touch, or only touches after the conversion / of other users
        conversion("c-none", "u-none", revenue="12.34"),
        touch("after", "u-after", C + HOUR, "email"),
        conversion("c-after", "u-after"),
        # one touch credited by two conversions of the same user
        touch("m1", "u-multi", C - 2 * HOUR, "email"),
        conversion("c-multi1", "u-multi", at=C - HOUR),
        conversion("c-multi2", "u-multi"),
        # duplicate deliveries of a touch and of a conversion
        touch("dup1", "u-dup", C - 2 * HOUR, "email"),
        touch("dup2", "u-dup", C - HOUR, "display"),
        conversion("c-dup", "u-dup"),
        touch("dup1", "u-dup", C - 2 * HOUR, "email"),
        conversion("c-dup", "u-dup"),
        # FX: half-even to the cent, the conversion's month, no rate, no revenue
        conversion("fx-eur-even", "u-fx", revenue="50.00", currency="EUR"),  # 58.265 -> 58.26
        conversion("fx-eur-odd", "u-fx", revenue="150.00", currency="EUR"),  # 174.795 -> 174.80
        conversion("fx-usd-half-down", "u-fx", revenue="0.005"),  # 0.00
        conversion("fx-usd-half-up", "u-fx", revenue="0.015"),  # 0.02
        conversion("fx-oct", "u-fx", at=datetime(2026, 11, 1, tzinfo=UTC) - MS, revenue="10.00", currency="EUR"),
        conversion("fx-nov", "u-fx", at=datetime(2026, 11, 1, tzinfo=UTC), revenue="10.00", currency="EUR"),
        conversion("fx-no-rate", "u-fx", revenue="10.00", currency="JPY"),
        conversion("fx-no-revenue", "u-fx", revenue=None, currency=None),
        # outside [FIRST, LAST]: not computed
        conversion("c-before", "u-fx", at=datetime(2026, 9, 30, 23, 59, 59, 999000, tzinfo=UTC)),
        conversion("c-later", "u-fx", at=datetime(2026, 11, 2, tzinfo=UTC)),
    ]
    for n in (1, 2, 3, 4):  # position-based paths of n touches, 10.01
        events += [touch(f"pos{n}-{i}", f"u-pos{n}", C - (n - i + 1) * HOUR, "email") for i in range(1, n + 1)]
        events.append(conversion(f"c-pos{n}", f"u-pos{n}", revenue="10.01"))
    return events


@pytest.fixture(scope="module")
def spark():
    session = spark_session()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def rows(spark, tmp_path_factory) -> list[dict]:
    return credits(spark, write_archive(tmp_path_factory.mktemp("archive"), hand_made_events()))


def test_output_has_the_spec_columns_and_types(spark, tmp_path):
    root = write_archive(tmp_path, [touch("t", "u", C - HOUR, "email"), conversion("c", "u")])
    events = read_archive(spark, str(root), FIRST, LAST, 30)
    df = rule_based_credits(spark, events, read_fx_rates(spark, FX_CSV), CONFIG, FIRST, LAST)
    assert df.dtypes == [
        ("conversion_id", "string"),
        ("order_id", "string"),
        ("user_id", "string"),
        ("converted_at", "timestamp"),
        ("conversion_date", "date"),
        ("model", "string"),
        ("touch_index", "int"),
        ("touch_count", "int"),
        ("touch_id", "string"),
        ("touch_at", "timestamp"),
        ("touch_type", "string"),
        ("channel", "string"),
        ("campaign_id", "string"),
        ("creative_id", "string"),
        ("asset_id", "string"),
        ("credit_share", "decimal(18,9)"),
        ("revenue", "decimal(38,2)"),
        ("revenue_credit", "decimal(38,2)"),
        ("currency", "string"),
    ]


def test_single_touch_models(rows):
    assert summary(rows, "c-path", "first_touch") == [("p1", "1.000000000", "100.00")]
    assert summary(rows, "c-path", "last_touch") == [("p4", "1.000000000", "100.00")]
    assert summary(rows, "c-path", "last_non_direct") == [("p3", "1.000000000", "100.00")]
    assert summary(rows, "c-alldirect", "last_non_direct") == [("ad2", "1.000000000", "100.00")]
    assert summary(rows, "c-tie", "first_touch") == [("tie-a", "1.000000000", "100.00")]
    assert summary(rows, "c-tie", "last_touch") == [("tie-b", "1.000000000", "100.00")]
    (row,) = of(rows, "c-path", "last_non_direct")
    assert (row["touch_index"], row["touch_count"], row["touch_type"], row["channel"], row["campaign_id"]) == (
        3,
        4,
        "impression",
        "paid_search",
        "paid_search-cmp",
    )
    assert (row["touch_at"], row["converted_at"], row["conversion_date"]) == (C - 20 * HOUR, C, C.date())
    assert (row["order_id"], row["user_id"], row["revenue"], row["currency"]) == (
        "o-c-path",
        "u-path",
        Decimal("100.00"),
        "USD",
    )


def test_linear_splits_shares_and_cents_by_largest_remainder(rows):
    assert summary(rows, "c-path", "linear") == [(f"p{i}", "0.250000000", "25.00") for i in range(1, 5)]
    assert summary(rows, "c-linear", "linear") == [
        ("l3", "0.333333334", "0.34"),
        ("l2", "0.333333333", "0.33"),
        ("l1", "0.333333333", "0.33"),
    ]
    assert [r["touch_index"] for r in of(rows, "c-linear", "linear")] == [1, 2, 3]


def test_position_based(rows):
    assert summary(rows, "c-pos1", "position_based") == [("pos1-1", "1.000000000", "10.01")]
    assert summary(rows, "c-pos2", "position_based") == [
        ("pos2-1", "0.500000000", "5.01"),
        ("pos2-2", "0.500000000", "5.00"),
    ]
    assert summary(rows, "c-pos3", "position_based") == [
        ("pos3-1", "0.400000000", "4.01"),
        ("pos3-2", "0.200000000", "2.00"),
        ("pos3-3", "0.400000000", "4.00"),
    ]
    assert summary(rows, "c-pos4", "position_based") == [
        ("pos4-1", "0.400000000", "4.01"),
        ("pos4-2", "0.100000000", "1.00"),
        ("pos4-3", "0.100000000", "1.00"),
        ("pos4-4", "0.400000000", "4.00"),
    ]


def test_time_decay(rows):
    assert summary(rows, "c-decay", "time_decay") == [("d1", "0.333333333", "33.33"), ("d2", "0.666666667", "66.67")]
    weights = [2.0 ** (-(d / 1000) / (7.0 * 86400)) for d in (7 * 86_400_000, 1)]
    units = spec_units(weights)
    got = of(rows, "c-decay2", "time_decay")
    assert [r["credit_share"] for r in got] == [Decimal(u).scaleb(-9) for u in units]
    assert sum(r["revenue_credit"] for r in got) == Decimal("10.01")


def test_lookback_windows_are_inclusive_to_the_millisecond(rows):
    for model in RULE_MODELS:
        assert [r["touch_id"] for r in of(rows, "c-win-click", model)] == ["w1"]
        assert [r["touch_id"] for r in of(rows, "c-win-imp", model)] == ["w3"]
        assert [r["touch_id"] for r in of(rows, "c-win-email", model)] == ["w6"]


def test_conversions_without_a_path_are_unattributed_in_every_model(rows):
    for conversion_id, revenue in (("c-none", "12.34"), ("c-after", "100.00")):
        got = [r for r in rows if r["conversion_id"] == conversion_id]
        assert sorted(r["model"] for r in got) == sorted(RULE_MODELS)
        for r in got:
            assert (
                r["touch_index"],
                r["touch_count"],
                r["touch_id"],
                r["touch_at"],
                r["touch_type"],
                r["channel"],
            ) == (0, 0, "", None, "none", "unattributed")
            assert (r["campaign_id"], r["creative_id"], r["asset_id"]) == ("", "", "")
            assert (r["credit_share"], r["revenue"], r["revenue_credit"]) == (
                Decimal(1),
                Decimal(revenue),
                Decimal(revenue),
            )


def test_a_touch_counts_for_every_conversion_it_precedes_and_duplicates_count_once(rows):
    assert (
        summary(rows, "c-multi1", "linear") == summary(rows, "c-multi2", "linear") == [("m1", "1.000000000", "100.00")]
    )
    assert summary(rows, "c-dup", "linear") == [("dup1", "0.500000000", "50.00"), ("dup2", "0.500000000", "50.00")]
    assert len([r for r in rows if r["conversion_id"] == "c-dup"]) == 3 * 1 + 3 * 2  # single-touch models, split models


def test_revenue_is_converted_at_the_months_rate_half_to_even(rows):
    revenue = {r["conversion_id"]: r["revenue"] for r in rows if r["conversion_id"].startswith(("fx-", "c-"))}
    assert {k: str(v) for k, v in revenue.items() if k.startswith("fx-")} == {
        "fx-eur-even": "58.26",
        "fx-eur-odd": "174.80",
        "fx-usd-half-down": "0.00",
        "fx-usd-half-up": "0.02",
        "fx-oct": "11.65",
        "fx-nov": "11.59",
        "fx-no-rate": "0.00",
        "fx-no-revenue": "0.00",
    }
    assert "c-before" not in revenue and "c-later" not in revenue


PATH = ["direct", "email", "email", "paid_search", "email", "direct", "direct"]


@pytest.mark.parametrize(
    ("transforms", "mixed", "all_direct", "reordered"),
    [
        ((), PATH, ["direct"] * 3, ["email", "direct", "email"]),
        (
            ("collapse_repeats",),
            ["direct", "email", "paid_search", "email", "direct"],
            ["direct"],
            ["email", "direct", "email"],
        ),
        (("first_occurrence",), ["direct", "email", "paid_search"], ["direct"], ["email", "direct"]),
        (("drop_direct",), ["email", "email", "paid_search", "email"], ["direct"] * 3, ["email", "email"]),
        (("drop_trailing_direct",), PATH[:5], ["direct"] * 3, ["email", "direct", "email"]),
        (
            ("drop_trailing_direct", "collapse_repeats"),
            ["direct", "email", "paid_search", "email"],
            ["direct"],
            ["email", "direct", "email"],
        ),
        (("collapse_repeats", "drop_direct"), ["email", "paid_search", "email"], ["direct"], ["email", "email"]),
        (("drop_direct", "collapse_repeats"), ["email", "paid_search", "email"], ["direct"], ["email"]),
    ],
)
def test_path_transforms_apply_in_the_configured_order(spark, tmp_path, transforms, mixed, all_direct, reordered):
    events = [touch(f"a{i}", "u-mixed", C - (10 - i) * HOUR, ch) for i, ch in enumerate(PATH)]
    events += [touch(f"b{i}", "u-direct", C - (10 - i) * HOUR, "direct") for i in range(3)]
    events += [
        touch(f"c{i}", "u-reordered", C - (10 - i) * HOUR, ch) for i, ch in enumerate(["email", "direct", "email"])
    ]
    events += [
        conversion("c-mixed", "u-mixed"),
        conversion("c-direct", "u-direct"),
        conversion("c-reordered", "u-reordered"),
    ]
    config = AttributionConfig(path_transforms=transforms)
    got = credits(spark, write_archive(tmp_path, events), config)
    for conversion_id, expected in (("c-mixed", mixed), ("c-direct", all_direct), ("c-reordered", reordered)):
        linear = of(got, conversion_id, "linear")
        assert [r["channel"] for r in linear] == expected
        assert [r["touch_index"] for r in linear] == list(range(1, len(expected) + 1))
        assert {r["touch_count"] for r in got if r["conversion_id"] == conversion_id} == {len(expected)}
    if transforms == ("collapse_repeats",):  # the first touch of a run stays
        assert [r["touch_id"] for r in of(got, "c-mixed", "linear")] == ["a0", "a1", "a3", "a4", "a5"]


def test_run_backfill_writes_parquet_that_pyarrow_reads(tmp_path):
    root = write_archive(tmp_path / "archive", hand_made_events())
    out = tmp_path / "out"
    count = run_backfill(root, FX_CSV, CONFIG, FIRST, LAST, out)
    table = pq.read_table(out)
    assert count == table.num_rows > 0
    assert table.schema.field("converted_at").type == pa.timestamp("us", "UTC")
    assert table.schema.field("touch_at").type == pa.timestamp("us", "UTC")
    assert table.schema.field("credit_share").type == pa.decimal128(18, 9)
    assert table.schema.field("revenue_credit").type == pa.decimal128(38, 2)


def test_read_archive_reads_only_the_days_needed(spark, tmp_path):
    root = write_archive(
        tmp_path, [touch(f"t{d}", "u", datetime(2026, 10, d, tzinfo=UTC), "email") for d in (1, 5, 9, 10, 12)]
    )
    got = read_archive(spark, str(root), date(2026, 10, 9), date(2026, 10, 10), 4)
    assert sorted(r.event_id for r in got.select("event_id").collect()) == ["t10", "t5", "t9"]
    assert read_archive(spark, str(root), date(2027, 1, 1), date(2027, 1, 2), 1).count() == 0


def archive_rows(events: list[dict]) -> list[dict]:
    """Canonical event dicts as archive columns (delivery order kept, so a duplicate is a later delivery)."""
    out = []
    for e in events:
        row = {
            k: e.get(k)
            for k in (
                "event_id",
                "event_type",
                "user_id",
                "channel",
                "campaign_id",
                "creative_id",
                "asset_id",
                "order_id",
                "currency",
            )
        }
        row["occurred_at"] = reference.parse_ts(e["occurred_at"])
        row["revenue"] = None if e.get("revenue") in (None, "") else Decimal(e["revenue"])
        out.append(row)
    return out


@pytest.mark.parametrize(
    "config",
    [
        AttributionConfig(),
        AttributionConfig(lookback_overrides=read_lookback_overrides(SEEDS / "attribution_lookback_windows.csv")),
        AttributionConfig(
            lookback_overrides=read_lookback_overrides(SEEDS / "attribution_lookback_windows.csv"),
            path_transforms=("drop_trailing_direct", "collapse_repeats"),
        ),
    ],
    ids=["defaults", "seed-windows", "seed-windows-transforms"],
)
def test_edge_cases_match_the_python_reference_exactly(spark, tmp_path_factory, config):
    events = edge_case_events(seed=11, users=400)
    touches, conversions = reference.from_events(events, reference.load_fx_rates(FX_CSV))
    first = min(c.converted_at for c in conversions).date()
    last = max(c.converted_at for c in conversions).date()
    expected = reference.attribution_credits(touches, conversions, config, RULE_MODELS)
    root = write_archive(tmp_path_factory.mktemp("edge"), archive_rows(events))
    got = credits(spark, root, config, first, last)
    assert len(got) == len(expected) > 6 * len(conversions)
    assert got == sorted(expected, key=lambda r: (r["conversion_id"], r["model"], r["touch_index"]))
