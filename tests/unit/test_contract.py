"""Validation rules, run by the real ClickHouse engine (chDB) exactly as ingestion runs them."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipelines.events.contract import CURRENCIES, validated_sql
from mm_pipelines.events.generator import generate_events

pytestmark = pytest.mark.unit

TOUCH = {
    "event_id": "e1", "event_type": "click", "occurred_at": "2026-10-01T10:00:00Z", "user_id": "u-1",
    "channel": "paid_search", "campaign_id": "c1", "creative_id": "cr1", "asset_id": "a1", "schema_version": 1,
}
CONVERSION = {
    **TOUCH, "event_id": "e2", "event_type": "conversion", "order_id": "o1", "revenue": "12.34", "currency": "EUR", "sku": "s1",
}


def errors(session, messages: list[bytes]) -> list[str]:
    rows = session.query_rows(
        f"SELECT error FROM ({validated_sql('(SELECT 0 AS partition, 0 AS offset, arrayJoin({m:Array(String)}) AS raw)')})",
        {"m": [m.decode("utf-8", "replace") for m in messages]},
    )
    return [r[0] for r in rows]


def j(event) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from mm_pipelines.stores.clickhouse import Warehouse

    with Warehouse(f"chdb://{tmp_path_factory.mktemp('contract')}/wh").session() as s:
        yield s


CASES = [
    (TOUCH, ""),
    (CONVERSION, ""),
    ({**CONVERSION, "revenue": 19.99}, ""),
    ({**TOUCH, "occurred_at": "2026-10-01T12:00:00.123+02:00"}, ""),
    ({**TOUCH, "unknown_field": {"nested": [1, 2]}}, ""),
    ({k: v for k, v in TOUCH.items() if k != "user_id"}, "missing required field user_id"),
    ({**TOUCH, "user_id": None}, "missing required field user_id"),
    ({**TOUCH, "event_type": "view"}, "event_type view is not one of impression, click, conversion"),
    ({**TOUCH, "occurred_at": "2026-10-01 10:00"}, "occurred_at 2026-10-01 10:00 is not an RFC 3339 timestamp with a time zone"),
    ({**TOUCH, "occurred_at": "yesterday"}, "occurred_at yesterday is not an RFC 3339 timestamp with a time zone"),
    ({**TOUCH, "occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at 2099-01-01T00:00:00Z is in the future"),
    ({k: v for k, v in TOUCH.items() if k != "creative_id"}, "missing required field creative_id for a touch event"),
    ({k: v for k, v in CONVERSION.items() if k != "order_id"}, "missing required field order_id for a conversion"),
    ({**CONVERSION, "revenue": "-1.00"}, "revenue -1.00 is not a non-negative decimal amount"),
    ({**CONVERSION, "revenue": "ten"}, "revenue ten is not a non-negative decimal amount"),
    ({**CONVERSION, "currency": "XYZ"}, "currency XYZ is not an ISO 4217 code"),
    ({**TOUCH, "schema_version": "v1"}, "schema_version v1 is not a whole number"),
    ({**TOUCH, "user_id": "jane.doe@example.com"}, "PII: an e-mail address appears in the event"),
    ({**TOUCH, "note": "call me on +44 20 7946 0958"}, "PII: a phone number appears in the event"),
    ({**TOUCH, "note": "(555) 123-4567"}, "PII: a phone number appears in the event"),
    ({**TOUCH, "card": "4111 1111 1111 1111"}, "PII: a payment card number appears in the event"),
    ({**TOUCH, "card": "4012888888881881"}, "PII: a payment card number appears in the event"),
    # 16 digits that fail the Luhn check are an id, not a card.
    ({**TOUCH, "order_ref": "4111111111111112"}, ""),
]


@pytest.mark.parametrize("event, expected", CASES)
def test_rules(session, event, expected):
    assert errors(session, [j(event)]) == [expected]


def test_malformed_messages(session):
    assert errors(session, [b"{not json", b"[1, 2]", b""]) == [
        "malformed JSON: the message is not a JSON document",
        "malformed event: the message is JSON but not an object",
        "malformed JSON: the message is not a JSON document",
    ]


def test_every_generated_event_is_valid(session):
    events = generate_events(events=3000, seed=11)
    assert set(errors(session, [j(e) for e in events])) == {""}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    revenue=st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False, allow_infinity=False),
    currency=st.sampled_from(sorted(CURRENCIES)),
    user=st.from_regex(r"u-[0-9a-f]{1,16}", fullmatch=True),
)
def test_any_well_formed_conversion_is_valid(session, revenue, currency, user):
    event = {**CONVERSION, "revenue": str(revenue), "currency": currency, "user_id": user}
    assert errors(session, [j(event)]) == [""]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["event_id", "event_type", "occurred_at", "user_id", "channel"]))
def test_dropping_any_required_field_is_caught(session, field):
    event = {k: v for k, v in TOUCH.items() if k != field}
    assert errors(session, [j(event)]) == [f"missing required field {field}"]


def test_digit_runs_inside_ids_are_not_card_numbers(session):
    # 4111111111111111 passes the Luhn check; next to letters it is part of an id, not a card.
    event = {**TOUCH, "event_id": "ab4111111111111111cd", "order_ref": "x-4111111111111111"}
    assert errors(session, [j(event)]) == ["PII: a payment card number appears in the event"]
    event = {**TOUCH, "event_id": "ab4111111111111111cd"}
    assert errors(session, [j(event)]) == [""]
