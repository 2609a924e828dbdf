"""Validation rules, run by the real ClickHouse engine (chDB) exactly as ingestion runs them."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipelines.events.event_schema import CURRENCIES, MAX_MESSAGE_BYTES, stored_raw_sql, validated_sql
from mm_pipelines.events.generator import generate_events

pytestmark = pytest.mark.unit

TOUCH = {
    "event_id": "e1",
    "event_type": "click",
    "occurred_at": "2026-10-01T10:00:00Z",
    "user_id": "u-1",
    "channel": "paid_search",
    "campaign_id": "c1",
    "creative_id": "cr1",
    "asset_id": "a1",
    "schema_version": 1,
}
CONVERSION = {
    **TOUCH,
    "event_id": "e2",
    "event_type": "conversion",
    "order_id": "o1",
    "revenue": "12.34",
    "currency": "EUR",
    "sku": "s1",
}


SOURCE = "(SELECT 0 AS partition, 0 AS offset, arrayJoin({m:Array(String)}) AS raw, '' AS problem)"


def errors(session, messages: list[bytes]) -> list[str]:
    rows = session.query_rows(
        f"SELECT error FROM ({validated_sql(SOURCE)})", {"m": [m.decode("utf-8", "replace") for m in messages]}
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
    (
        {**TOUCH, "occurred_at": "2026-10-01 10:00"},
        "occurred_at 2026-10-01 10:00 is not an RFC 3339 timestamp with a time zone",
    ),
    ({**TOUCH, "occurred_at": "yesterday"}, "occurred_at yesterday is not an RFC 3339 timestamp with a time zone"),
    ({**TOUCH, "occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at 2099-01-01T00:00:00Z is in the future"),
    ({k: v for k, v in TOUCH.items() if k != "creative_id"}, "missing required field creative_id for a touch event"),
    ({k: v for k, v in CONVERSION.items() if k != "order_id"}, "missing required field order_id for a conversion"),
    ({**CONVERSION, "revenue": "-1.00"}, "revenue -1.00 is not a non-negative decimal amount"),
    ({**CONVERSION, "revenue": "ten"}, "revenue ten is not a non-negative decimal amount"),
    ({**CONVERSION, "currency": "XYZ"}, "currency XYZ is not an ISO 4217 code"),
    ({**TOUCH, "schema_version": "v1"}, "schema_version v1 is not a whole number"),
    ({**TOUCH, "user_id": "jane.doe@example.com"}, "PII: an e-mail address appears in field user_id"),
    ({**TOUCH, "note": "call me on +44 20 7946 0958"}, "PII: a phone number appears in field note"),
    ({**TOUCH, "note": "(555) 123-4567"}, "PII: a phone number appears in field note"),
    ({**TOUCH, "card": "4111 1111 1111 1111"}, "PII: a payment card number appears in field card"),
    ({**TOUCH, "card": "4012888888881881"}, "PII: a payment card number appears in field card"),
    ({**TOUCH, "contact": {"work": ["x", "jo@corp.example"]}}, "PII: an e-mail address appears in field contact"),
    # A field name that is itself personal data is not repeated in the reason.
    ({**TOUCH, "jo@corp.example": 1}, "PII: an e-mail address appears in a field name"),
    ({**TOUCH, "+44 20 7946 0958": "jo@corp.example"}, "PII: an e-mail address appears in a field name"),
    # PII is recognised first, whatever else is wrong.
    ({"user_id": "jo@corp.example"}, "PII: an e-mail address appears in field user_id"),
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
    assert errors(session, [j(event)]) == ["PII: a payment card number appears in field order_ref"]
    event = {**TOUCH, "event_id": "ab4111111111111111cd"}
    assert errors(session, [j(event)]) == [""]


def with_revenue(literal: str) -> bytes:
    """A conversion whose revenue is written exactly as `literal` (a JSON string or number)."""
    return (
        json.dumps({k: v for k, v in CONVERSION.items() if k != "revenue"})[:-1] + f', "revenue": {literal}}}'
    ).encode()


TOO_PRECISE = [
    "0.1234567890123456789012345",  # 25 decimal places
    "12345678901234567890123456789",  # 29 integer digits
    "12345678901234567890123456789.5",
    "12.00000000001",  # 11 decimal places
    "1e-20",
    "1.5e40",
]


@pytest.mark.parametrize("digits", TOO_PRECISE)
@pytest.mark.parametrize("as_string", [True, False], ids=["string", "number"])
def test_a_revenue_with_more_digits_than_stored_is_refused_not_cut(session, digits, as_string):
    [error] = errors(session, [with_revenue(json.dumps(digits) if as_string else digits)])
    assert error == (
        f"revenue {digits} has more precision than supported: "
        "at most 28 digits before the decimal point and 10 after it"
    )


def test_an_exponent_no_integer_holds_is_refused(session):
    assert errors(session, [with_revenue('"1e99999999999"')]) == [
        "revenue 1e99999999999 has more precision than supported: "
        "at most 28 digits before the decimal point and 10 after it"
    ]


@pytest.mark.parametrize(
    "literal, stored",
    [
        (
            "1234567890123456789012345678.1234567891",
            "1234567890123456789012345678.1234567891",
        ),  # the most Decimal(38, 10) holds
        ('"1234567890123456789012345678.1234567891"', "1234567890123456789012345678.1234567891"),
        ("12.50000000000000000000000", "12.5"),  # trailing zeros lose nothing
        ('"12.50000000000000000000000"', "12.5"),
        ('"000012.5"', "12.5"),
        ("1.5e3", "1500"),
        ('"0.0000000001"', "0.0000000001"),
    ],
)
def test_a_revenue_that_fits_is_kept_exactly(session, literal, stored):
    [(error, revenue)] = session.query_rows(
        f"SELECT error, toString(revenue) FROM ({validated_sql(SOURCE)})", {"m": [with_revenue(literal).decode()]}
    )
    assert (error, revenue) == ("", stored)


def test_an_oversized_message_is_refused_before_it_is_parsed(session):
    big = json.dumps({**TOUCH, "padding": "x" * MAX_MESSAGE_BYTES}).encode()
    assert errors(session, [big]) == [
        f"the message is {len(big)} bytes, more than the 1048576 (1 MiB) an event may have"
    ]
    fits = json.dumps({**TOUCH, "padding": "x" * (MAX_MESSAGE_BYTES - 400)}).encode()
    assert len(fits) <= MAX_MESSAGE_BYTES and errors(session, [fits]) == [""]


def test_what_the_bus_found_wrong_is_the_reason_unless_there_is_pii(session):
    source = (
        "(SELECT 0 AS partition, 0 AS offset, arrayJoin({m:Array(String)}) AS raw, "
        "'the message key is empty' AS problem)"
    )
    rows = session.query_rows(
        f"SELECT error FROM ({validated_sql(source)})",
        {"m": [j(TOUCH).decode(), j({**TOUCH, "user_id": "a@b.io"}).decode()]},
    )
    assert rows == [("the message key is empty",), ("PII: an e-mail address appears in field user_id",)]


PII_MESSAGES = [
    # (message, personal data in it, reason)
    (
        j({**TOUCH, "user_id": "jane.doe@example.com"}),
        ["jane.doe@example.com"],
        "PII: an e-mail address appears in field user_id",
    ),
    (
        j({**TOUCH, "phone": "+44 20 7946 0958", "alt": "call (555) 123-4567 or +1 415 555 2671"}),
        ["+44 20 7946 0958", "(555) 123-4567", "+1 415 555 2671", "7946 0958", "555-4567"],
        "PII: a phone number appears in field phone",
    ),
    (
        j({**TOUCH, "payment": {"card": "4111 1111 1111 1111", "backup": "4012-8888-8888-1881"}}),
        ["4111 1111 1111 1111", "4012-8888-8888-1881", "1111 1111", "8888-1881"],
        "PII: a payment card number appears in field payment",
    ),
    # Every kind is redacted, whichever was found first; so is PII in a field name or in text that is not JSON.
    (
        j({**TOUCH, "note": "jo@corp.example, +44 20 7946 0958, 4111111111111111"}),
        ["jo@corp.example", "+44 20 7946 0958", "4111111111111111"],
        "PII: an e-mail address appears in field note",
    ),
    (j({**TOUCH, "jo@corp.example": "x"}), ["jo@corp.example"], "PII: an e-mail address appears in a field name"),
    (b'{"user_id": "jo@corp.example", broken', ["jo@corp.example"], "PII: an e-mail address appears in the message"),
]


@pytest.mark.parametrize("message, personal, reason", PII_MESSAGES)
def test_a_pii_dead_letter_is_stored_redacted_and_says_which_field(session, message, personal, reason):
    [(error, stored)] = session.query_rows(
        f"SELECT error, {stored_raw_sql()} FROM ({validated_sql(SOURCE)})", {"m": [message.decode()]}
    )
    assert error == reason
    assert not [p for p in personal if p in stored], stored
    assert "[redacted " in stored
    # Everything else is kept as it came, so the dead letter still says what the producer sent.
    assert '"event_id"' not in message.decode() or '"event_id": "e1"' in stored


def test_dead_letters_without_pii_are_stored_as_they_came(session):
    messages = [b"{not json", j({**TOUCH, "event_type": "view", "order_ref": "4111111111111112"})]
    rows = session.query_rows(
        f"SELECT {stored_raw_sql()} FROM ({validated_sql(SOURCE)})", {"m": [m.decode() for m in messages]}
    )
    assert [r[0].encode() for r in rows] == messages
