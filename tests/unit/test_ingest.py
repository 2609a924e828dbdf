"""Ingesting offset ranges into the real ClickHouse engine (chDB)."""

import io
import json

import pyarrow.parquet as pq
import pytest

from mm_pipelines.events.generator import generate_events, to_jsonl
from mm_pipelines.events.ingest import (
    ingest_batch,
    ingest_pending,
    ingested_offsets,
    record_file_dead_letters,
    unreadable,
    validate_lines,
)
from mm_pipelines.stores.bus import Batch, LocalEventLog
from mm_pipelines.stores.objects import LocalObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables

pytestmark = pytest.mark.unit


def batch_of(events, start=0, partition=0, extra=(), keys=None):
    values = [json.dumps(e).encode() for e in events] + list(extra)
    keys = keys if keys is not None else [f"u-{i}".encode() for i in range(len(values))]
    return Batch("t", partition, start, start + len(values), list(range(start, start + len(values))), values, keys)


def counts(s):
    return s.query_rows(
        "SELECT (SELECT count() FROM raw.events), (SELECT uniqExact(event_id) FROM raw.events), "
        "(SELECT count() FROM raw.dead_letters)"
    )[0]


def test_a_retried_batch_is_inserted_once(warehouse):
    batch = batch_of(generate_events(events=500, seed=1), extra=[b"{oops"])
    with warehouse.session() as s:
        ensure_tables(s)
        first = ingest_batch(s, batch)
        second = ingest_batch(s, batch)
        assert (first.events, first.dead_letters) == (second.events, second.dead_letters) == (len(batch) - 1, 1)
        assert counts(s) == (len(batch) - 1, len(batch) - 1, 1)
        assert ingested_offsets(s, "t") == {0: len(batch)}
        dead = s.query_rows("SELECT topic, partition, offset, raw, error FROM raw.dead_letters")
        assert dead == [("t", 0, len(batch) - 1, "{oops", "malformed JSON: the message is not a JSON document")]
        assert s.scalar("SELECT count() FROM system.tables WHERE database = 'raw' AND name LIKE 'scratch%'") == 0


def test_money_and_unknown_fields_survive_exactly(warehouse):
    event = {
        **generate_events(events=50, seed=2)[-1],
        "event_type": "conversion",
        "order_id": "o",
        "revenue": "1234567.0123456789",
        "currency": "JPY",
        "sku": "s",
        "campaign_meta": {"a": [1, 2]},
    }
    with warehouse.session() as s:
        ensure_tables(s)
        ingest_batch(s, batch_of([event]))
        revenue, currency, extra = s.query_rows("SELECT toString(revenue), currency, extra FROM raw.events")[0]
    assert (revenue, currency) == ("1234567.0123456789", "JPY")
    assert json.loads(extra["campaign_meta"]) == {"a": [1, 2]}


def test_a_revenue_sent_as_a_json_number_keeps_every_digit(warehouse):
    base = {
        **generate_events(events=50, seed=2)[-1],
        "event_type": "conversion",
        "order_id": "o",
        "currency": "EUR",
        "sku": "s",
    }
    body = json.dumps({k: v for k, v in base.items() if k != "revenue"})[:-1]
    exact = (body + ', "revenue": 12345678901234567890.1234567891}').encode()  # a float keeps 17 digits of these 30
    # The nested field of the same name comes first, so the number's digits cannot be told apart: refused, not rounded.
    nested = (
        body.replace('"event_id": "', '"event_id": "n-') + ', "meta": {"revenue": 1}, "revenue": 0.30000000000000001}'
    ).encode()
    with warehouse.session() as s:
        ensure_tables(s)
        ingest_batch(s, batch_of([], extra=[exact, nested]))
        assert s.query_rows("SELECT toString(revenue) FROM raw.events") == [("12345678901234567890.1234567891",)]
        assert s.query_rows("SELECT offset, error FROM raw.dead_letters") == [
            (1, 'revenue is a JSON number whose digits could not be read exactly: send it as a string, e.g. "19.99"')
        ]


def test_a_batch_spanning_hundreds_of_days_lands(warehouse):
    base = generate_events(events=50, seed=3)[0]
    events = [
        {
            **base,
            "event_id": f"late-{d}",
            "occurred_at": f"{2016 + d // 365:04d}-{1 + (d // 30) % 12:02d}-{1 + d % 28:02d}T00:00:00Z",
        }
        for d in range(0, 3600, 9)
    ]
    with warehouse.session() as s:
        ensure_tables(s)
        result = ingest_batch(s, batch_of(events))
        assert result.events == len(events) and len(result.dates) == len({e["occurred_at"][:10] for e in events})
        assert s.scalar("SELECT uniqExact(toYYYYMM(occurred_at)) FROM raw.events") > 100


EVENT = generate_events(events=50, seed=4)[0]
NO_VALUE = "the message has no value (null): a tombstone is not an event"
NO_KEY = "the message has no key (null): events are keyed by their user_id"
EMPTY_KEY = "the message key is empty: events are keyed by their user_id"
BINARY_KEY = "the message key is binary, not UTF-8 text: events are keyed by their user_id"


def test_unreadable_names_each_message_the_pipeline_cannot_read():
    batch = Batch(
        "t",
        0,
        0,
        7,
        list(range(7)),
        values=[b"{}", None, b"{}", b"{}", b"{}", b"{}", None],
        keys=[b"u-1", b"u-2", None, b"", b"\xff\xfe", "ünï".encode(), None],
        headers={4: ["traceparent"], 5: ["traceparent", "x-schema", "content-type"], 0: ["tracestate"]},
    )
    assert unreadable(batch) == {
        1: NO_VALUE,
        2: NO_KEY,
        3: EMPTY_KEY,
        4: BINARY_KEY,
        5: "unexpected headers content-type, x-schema: events carry no headers but traceparent, tracestate",
        6: NO_VALUE,  # the first problem wins
    }
    assert unreadable(Batch("t", 0, 0, 2, [0, 1], [b"{}", b"{}"], ["ü".encode(), "ï".encode()])) == {}


def test_keys_whose_bytes_only_join_into_utf8_are_still_binary():
    # b"\xc3" + b"\xbc" is "ü", but neither key is UTF-8 text on its own.
    assert unreadable(Batch("t", 0, 0, 2, [0, 1], [b"{}", b"{}"], [b"\xc3", b"\xbc"])) == {0: BINARY_KEY, 1: BINARY_KEY}


def test_unreadable_messages_are_dead_letters_and_the_range_completes(warehouse, tmp_path):
    good = [{**EVENT, "event_id": f"ok-{i}"} for i in range(3)]
    values = [json.dumps(e).encode() for e in good] + [
        None,
        json.dumps(EVENT).encode(),
        json.dumps(EVENT).encode(),
        json.dumps(EVENT).encode(),
    ]
    keys = [b"u"] * 3 + [b"u", None, b"\x80", b"u"]
    batch = Batch("t", 2, 10, 17, list(range(10, 17)), values, keys, headers={6: ["x-legacy"]})
    archive = LocalObjectStore(f"file://{tmp_path}/objects")
    with warehouse.session() as s:
        ensure_tables(s)
        result = ingest_batch(s, batch, archive)
        again = ingest_batch(s, batch, archive)  # a retry neither loses nor doubles
        assert (result.events, result.dead_letters) == (again.events, again.dead_letters) == (3, 4)
        assert counts(s) == (3, 3, 4)
        assert s.query_rows("SELECT offset, raw, error FROM raw.dead_letters ORDER BY offset") == [
            (13, "", NO_VALUE),
            (14, json.dumps(EVENT), NO_KEY),
            (15, json.dumps(EVENT), BINARY_KEY),
            (16, json.dumps(EVENT), "unexpected headers x-legacy: events carry no headers but traceparent, tracestate"),
        ]
        assert s.query_rows(
            "SELECT partition, start_offset, end_offset, events, dead_letters FROM raw.ingested_ranges"
        ) == [(2, 10, 17, 3, 4)]
    archived = pq.read_table(
        io.BytesIO(archive.get_bytes("raw/dead_letters/t-p2-00000000000000000010-00000000000000000017.parquet"))
    )
    assert archived.column("offset").to_pylist() == [13, 14, 15, 16]


def test_empty_and_binary_keys_on_the_embedded_log_are_dead_letters(warehouse, tmp_path):
    log = LocalEventLog(f"log://{tmp_path}/log")
    log.ensure_topic("t", 2)
    events = generate_events(events=300, seed=5)
    lines = [line.rstrip(b"\n") for line in to_jsonl(events)]
    log.produce(
        "t",
        [(e["user_id"].encode(), line) for e, line in zip(events, lines)]
        + [(b"", lines[0]), (b"\xff\x00\xfe", lines[1])],
    )
    run = ingest_pending(warehouse, log, "t", max_batch=100)
    assert (run.events, run.dead_letters) == (len(events), 2)
    with warehouse.session() as s:
        assert counts(s) == (len(events), len(events), 2)
        assert sorted(r[0] for r in s.query_rows("SELECT error FROM raw.dead_letters")) == [BINARY_KEY, EMPTY_KEY]
        assert ingested_offsets(s, "t") == log.end_offsets("t")


def test_an_unknown_topic_is_nothing_to_ingest(warehouse, tmp_path):
    run = ingest_pending(warehouse, LocalEventLog(f"log://{tmp_path}/log"), "nope", max_batch=100)
    assert (run.ranges, run.events, run.dead_letters) == ([], 0, 0)


def test_a_revenue_too_precise_for_decimal_38_10_is_a_dead_letter_never_cut(warehouse):
    conversion = {**EVENT, "event_type": "conversion", "order_id": "o", "currency": "EUR", "sku": "s"}
    body = json.dumps({k: v for k, v in conversion.items() if k != "revenue"})[:-1]
    messages = [
        (body + ', "revenue": "19.1234567890123456789012345"}').encode(),  # 25 decimal places, as a string
        (body + ', "revenue": 19.1234567890123456789012345}').encode(),  # and as a number
        (body + ', "revenue": "123456789012345678901234567890"}').encode(),  # 30 integer digits
    ]
    with warehouse.session() as s:
        ensure_tables(s)
        result = ingest_batch(s, batch_of([], extra=messages))
        assert (result.events, result.dead_letters) == (0, 3)
        errors = [r[0] for r in s.query_rows("SELECT error FROM raw.dead_letters ORDER BY offset")]
        assert all("more precision than supported" in e for e in errors), errors
        assert [r[0].encode() for r in s.query_rows("SELECT raw FROM raw.dead_letters ORDER BY offset")] == messages


PII_EVENTS = [
    {**EVENT, "event_id": "p1", "user_id": "jane.doe@example.com"},
    {**EVENT, "event_id": "p2", "note": "ring +44 20 7946 0958"},
    {**EVENT, "event_id": "p3", "payment": {"card": "4111 1111 1111 1111"}},
]
PERSONAL = ["jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"]
PII_REASONS = [
    "PII: an e-mail address appears in field user_id",
    "PII: a phone number appears in field note",
    "PII: a payment card number appears in field payment",
]


def test_pii_dead_letters_are_stored_and_archived_redacted(warehouse, tmp_path):
    archive = LocalObjectStore(f"file://{tmp_path}/objects")
    with warehouse.session() as s:
        ensure_tables(s)
        ingest_batch(s, batch_of(PII_EVENTS), archive)
        dead = s.query_rows("SELECT offset, raw, error FROM raw.dead_letters ORDER BY offset")
    assert [(o, e) for o, _, e in dead] == list(enumerate(PII_REASONS))
    for _, raw, _ in dead:
        assert not [p for p in PERSONAL if p in raw] and "[redacted " in raw and '"event_id": "p' in raw
    [key] = archive.list_keys("raw/dead_letters/")
    archived = archive.get_bytes(key)
    assert not [p for p in PERSONAL if p.encode() in archived]
    assert pq.read_table(io.BytesIO(archived)).column("raw").to_pylist() == [r for _, r, _ in dead]


def test_file_dead_letters_are_stored_redacted(warehouse):
    lines = [json.dumps(e).encode() for e in PII_EVENTS] + [b"{not json", json.dumps(EVENT).encode()]
    with warehouse.session() as s:
        ensure_tables(s)
        checked = validate_lines(s, "file:x", lines)
        record_file_dead_letters(s, "events.jsonl", "file:x", checked)
        dead = s.query_rows("SELECT line, raw, error FROM raw.dead_letters ORDER BY line")
    assert checked.valid_lines == [5] and checked.invalid == [
        (1, PII_REASONS[0]),
        (2, PII_REASONS[1]),
        (3, PII_REASONS[2]),
        (4, "malformed JSON: the message is not a JSON document"),
    ]
    assert [(n, e) for n, _, e in dead] == checked.invalid
    assert dead[3][1] == "{not json"
    for _, raw, _ in dead[:3]:
        assert not [p for p in PERSONAL if p in raw] and "[redacted " in raw


def test_a_file_line_too_large_for_the_bus_is_quarantined(warehouse):
    from mm_pipelines.events.event_schema import MAX_MESSAGE_BYTES

    big = json.dumps({**EVENT, "padding": "x" * MAX_MESSAGE_BYTES}).encode()
    with warehouse.session() as s:
        ensure_tables(s)
        checked = validate_lines(s, "file:big", [json.dumps(EVENT).encode(), big])
    assert checked.valid_lines == [1]
    assert checked.invalid == [(2, f"the message is {len(big)} bytes, more than the 1048576 (1 MiB) an event may have")]


def test_a_file_line_that_is_not_utf8_is_quarantined_as_it_came(warehouse):
    lines = [
        json.dumps(EVENT).encode(),
        b'{"event_type": "\xff\xfe"}',
        json.dumps({**EVENT, "event_type": "cl\xc3ick"}).encode("latin-1"),
    ]
    with warehouse.session() as s:
        ensure_tables(s)
        checked = validate_lines(s, "file:bytes", lines)
        record_file_dead_letters(s, "bytes.jsonl", "file:bytes", checked)
        stored = s.query_rows("SELECT line, hex(raw) FROM raw.dead_letters ORDER BY line")
    assert checked.valid_lines == [1] and [n for n, _ in checked.invalid] == [2, 3]
    assert stored == [(2, lines[1].hex().upper()), (3, lines[2].hex().upper())]
