"""Ingesting offset ranges into the real ClickHouse engine (chDB)."""

import json

import pytest

from mm_pipelines.events.bus import Batch
from mm_pipelines.events.generator import generate_events
from mm_pipelines.events.ingest import ensure_raw_tables, ingest_batch, ingested_offsets

pytestmark = pytest.mark.unit


def batch_of(events, start=0, partition=0, extra=()):
    values = [json.dumps(e).encode() for e in events] + list(extra)
    return Batch("t", partition, start, start + len(values), list(range(start, start + len(values))), values)


def counts(s):
    return s.query_rows(
        "SELECT (SELECT count() FROM raw.events), (SELECT uniqExact(event_id) FROM raw.events), (SELECT count() FROM raw.dead_letters)"
    )[0]


def test_a_retried_batch_is_inserted_once(warehouse):
    batch = batch_of(generate_events(events=500, seed=1), extra=[b"{oops"])
    with warehouse.session() as s:
        ensure_raw_tables(s)
        first = ingest_batch(s, batch)
        second = ingest_batch(s, batch)
        assert (first.events, first.dead_letters) == (second.events, second.dead_letters) == (len(batch) - 1, 1)
        assert counts(s) == (len(batch) - 1, len(batch) - 1, 1)
        assert ingested_offsets(s, "t") == {0: len(batch)}
        dead = s.query_rows("SELECT topic, partition, offset, raw, error FROM raw.dead_letters")
        assert dead == [("t", 0, len(batch) - 1, "{oops", "malformed JSON: the message is not a JSON document")]
        assert s.scalar("SELECT count() FROM system.tables WHERE database = 'raw' AND name LIKE 'scratch%'") == 0


def test_money_and_unknown_fields_survive_exactly(warehouse):
    event = {**generate_events(events=50, seed=2)[-1], "event_type": "conversion", "order_id": "o", "revenue": "1234567.0123456789",
             "currency": "JPY", "sku": "s", "campaign_meta": {"a": [1, 2]}}
    with warehouse.session() as s:
        ensure_raw_tables(s)
        ingest_batch(s, batch_of([event]))
        revenue, currency, extra = s.query_rows("SELECT toString(revenue), currency, extra FROM raw.events")[0]
    assert (revenue, currency) == ("1234567.0123456789", "JPY")
    assert json.loads(extra["campaign_meta"]) == {"a": [1, 2]}


def test_a_revenue_sent_as_a_json_number_keeps_every_digit(warehouse):
    base = {**generate_events(events=50, seed=2)[-1], "event_type": "conversion", "order_id": "o", "currency": "EUR", "sku": "s"}
    body = json.dumps({k: v for k, v in base.items() if k != "revenue"})[:-1]
    exact = (body + ', "revenue": 12345678901234567890.1234567891}').encode()  # a float keeps 17 digits of these 30
    # The nested field of the same name comes first, so the number's digits cannot be told apart: refused, not rounded.
    nested = (body.replace('"event_id": "', '"event_id": "n-') + ', "meta": {"revenue": 1}, "revenue": 0.30000000000000001}').encode()
    with warehouse.session() as s:
        ensure_raw_tables(s)
        ingest_batch(s, batch_of([], extra=[exact, nested]))
        assert s.query_rows("SELECT toString(revenue) FROM raw.events") == [("12345678901234567890.1234567891",)]
        assert s.query_rows("SELECT offset, error FROM raw.dead_letters") == [
            (1, 'revenue is a JSON number whose digits could not be read exactly: send it as a string, e.g. "19.99"')
        ]


def test_a_batch_spanning_hundreds_of_days_lands(warehouse):
    base = generate_events(events=50, seed=3)[0]
    events = [
        {**base, "event_id": f"late-{d}", "occurred_at": f"{2016 + d // 365:04d}-{1 + (d // 30) % 12:02d}-{1 + d % 28:02d}T00:00:00Z"}
        for d in range(0, 3600, 9)
    ]
    with warehouse.session() as s:
        ensure_raw_tables(s)
        result = ingest_batch(s, batch_of(events))
        assert result.events == len(events) and len(result.dates) == len({e["occurred_at"][:10] for e in events})
        assert s.scalar("SELECT uniqExact(toYYYYMM(occurred_at)) FROM raw.events") > 100
