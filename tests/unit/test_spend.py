"""Spend reports: every bad field is named with its file and line, and nothing of a bad file loads."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mm_pipelines.events.spend import SpendFileError, generate_spend_csv, parse_spend_csv

pytestmark = pytest.mark.unit
F = Path("spend.csv")


def test_a_good_report_parses_to_decimals():
    rows = parse_spend_csv(F, "date,channel,campaign_id,amount,currency\n2026-10-01,email,e-1,12.345,EUR\n")
    assert rows[0].amount == Decimal("12.345") and rows[0].line == 2 and rows[0].currency == "EUR"


@pytest.mark.parametrize(
    "line, message",
    [
        ("2026-13-01,email,e-1,1,USD", "spend.csv:3: field 'date' must be a date"),
        ("2026-10-01,,e-1,1,USD", "spend.csv:3: field 'channel' must not be empty"),
        ("2026-10-01,email,e-1,1.2.3,USD", "spend.csv:3: field 'amount' must be a decimal number"),
        ("2026-10-01,email,e-1,-5,USD", "spend.csv:3: field 'amount' must be a finite amount >= 0"),
        ("2026-10-01,email,e-1,NaN,USD", "spend.csv:3: field 'amount' must be a finite amount >= 0"),
        ("2026-10-01,email,e-1,5,XXX", "spend.csv:3: field 'currency' must be an ISO 4217 code"),
    ],
)
def test_errors_name_file_line_and_field(line, message):
    text = "date,channel,campaign_id,amount,currency\n2026-10-01,email,e-1,1,USD\n" + line + "\n"
    with pytest.raises(SpendFileError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_spend_csv(F, text)


def test_a_missing_column_is_named():
    with pytest.raises(SpendFileError, match="spend.csv:1: missing column 'currency'"):
        parse_spend_csv(F, "date,channel,campaign_id,amount\n")


def test_the_generated_report_is_deterministic_and_valid():
    campaigns = {"email": ["email-cmp-00"], "direct": ["direct-none"]}
    text = generate_spend_csv(campaigns, date(2026, 10, 1), 3, seed=1)
    assert text == generate_spend_csv(campaigns, date(2026, 10, 1), 3, seed=1)
    rows = parse_spend_csv(F, text)
    assert len(rows) == 3 and {r.campaign_id for r in rows} == {"email-cmp-00"}  # unpaid channels have no spend


def test_a_lone_carriage_return_names_the_line_instead_of_crashing():
    text = "date,channel,campaign_id,amount,currency\n2026-10-01,email,e-1,1,USD\n2026-10-02,email,e\r1,2,USD\n"
    with pytest.raises(
        SpendFileError, match=r"^spend\.csv:3: new-line character seen in unquoted field .*quote a field"
    ):
        parse_spend_csv(F, text)
