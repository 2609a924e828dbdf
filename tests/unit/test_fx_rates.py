"""Finance's FX rate files: the ECB's reference rates (per EUR, converted to the reporting currency) and plain
date,currency,rate files, each error naming file, line and field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm_pipelines.events.fx_rates import FxFileError, parse_fx_csv

pytestmark = pytest.mark.unit

PATH = Path("finance") / "eurofxref-hist.csv"
# The ECB's historical file: newest day first, a trailing comma, N/A for currencies without a rate that day and
# currencies the platform does not accept (CYP: the Cypriot pound, gone since 2008).
ECB = """Date,USD,JPY,CYP,GBP,CHF,
2026-10-02,1.1500,170.50,N/A,0.8700,N/A,
2026-10-01,1.1600,171.00,N/A,0.8650,0.9400,
"""


def rates(parsed) -> dict[tuple[date, str], Decimal]:
    return {(r.rate_date, r.currency): r.rate_to_reporting for r in parsed.rates}


def test_ecb_rates_per_euro_become_rates_to_the_reporting_currency_through_its_own_rate_that_day():
    parsed = parse_fx_csv(PATH, ECB, "USD")
    got = rates(parsed)
    assert parsed.format == "ecb" and parsed.skipped_currencies == ("CYP",)
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    # USD per EUR is the EUR rate; USD per GBP = (USD per EUR) / (GBP per EUR), half-to-even at 10 decimals.
    assert got[(d1, "EUR")] == Decimal("1.1600000000") and got[(d1, "USD")] == Decimal("1.0000000000")
    assert got[(d1, "GBP")] == Decimal("1.3410404624")  # 1.16 / 0.865 = 1.34104046242774…
    assert got[(d2, "GBP")] == Decimal("1.3218390805")  # 1.15 / 0.87 = 1.32183908045977…
    assert got[(d2, "JPY")] == Decimal("0.0067448680")  # 1.15 / 170.5 = 0.00674486803519…
    assert got[(d1, "CHF")] == Decimal("1.2340425532") and (d2, "CHF") not in got  # N/A: no rate that day
    assert all(r.line == 3 for r in parsed.rates if r.rate_date == d1)


def test_the_ecb_daily_file_with_spaces_and_a_spelled_out_date():
    parsed = parse_fx_csv(PATH, "Date, USD, GBP,\n04 December 2026, 1.0500, 0.8400,\n", "EUR")
    assert rates(parsed) == {
        (date(2026, 12, 4), "EUR"): Decimal("1.0000000000"),
        (date(2026, 12, 4), "USD"): Decimal("0.9523809524"),  # 1 / 1.05
        (date(2026, 12, 4), "GBP"): Decimal("1.1904761905"),  # 1 / 0.84
    }


def test_a_plain_file_holds_rates_to_the_reporting_currency_as_they_are():
    parsed = parse_fx_csv(
        Path("rates.csv"), "date,currency,rate\n2025-03-31,EUR,1.08125\n\n2025-03-31,GBP,1.29\n", "USD"
    )
    assert parsed.format == "plain"
    assert rates(parsed) == {
        (date(2025, 3, 31), "EUR"): Decimal("1.0812500000"),
        (date(2025, 3, 31), "GBP"): Decimal("1.2900000000"),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,what\n", r"^rates.csv:1: unknown header 'when,what': expected the ECB's reference rates"),
        ("date,currency,rate\n2025-02-30,EUR,1.1\n", r"^rates.csv:2: field 'date' must be a date YYYY-MM-DD"),
        ("date,currency,rate\n2025-03-01,EURO,1.1\n", r"^rates.csv:2: field 'currency' must be an ISO 4217 code"),
        ("date,currency,rate\n2025-03-01,EUR,0\n", r"^rates.csv:2: field 'rate' must be a positive decimal"),
        ("date,currency,rate\n2025-03-01,EUR,1,2\n", r"^rates.csv:2: expected 3 fields"),
        (
            "date,currency,rate\n2025-03-01,EUR,1.1\n2025-03-01,EUR,1.2\n",
            r"^rates.csv:3: a second rate for EUR on 2025-03-01 \(the first is on line 2\): keep one$",
        ),
        ("Date,USD,GBP\n2025-03-03,1.08,abc\n", r"^rates.csv:2: field 'GBP' must be a positive decimal number"),
        ("Date,USD,GBP\n2025-03-03,N/A,0.84\n", r"^rates.csv:2: field 'USD' has no rate on 2025-03-03"),
        ("Date,JPY,GBP\n2025-03-03,160,0.84\n", r"^rates.csv:1: no USD column: the reporting currency's rate"),
    ],
)
def test_bad_files_name_the_line_and_field(text, message):
    with pytest.raises(FxFileError, match=message):
        parse_fx_csv(Path("rates.csv"), text, "USD")


@given(
    usd=st.decimals(min_value="0.5", max_value="2", places=4),
    gbp=st.decimals(min_value="0.5", max_value="2", places=4),
)
def test_converting_back_and_forth_through_the_reporting_currency_loses_at_most_rounding(usd, gbp):
    """rate(GBP) / rate(EUR) recovers the ECB's EUR per GBP to the rounding of two 10-decimal rates."""
    got = rates(parse_fx_csv(PATH, f"Date,USD,GBP\n2026-10-01,{usd},{gbp}\n", "USD"))
    day = date(2026, 10, 1)
    assert abs(got[(day, "GBP")] / got[(day, "EUR")] - 1 / gbp) < Decimal("1E-8")
    assert got[(day, "USD")] == 1
